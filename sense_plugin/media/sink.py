"""The file object an export muxes into: paced writes, byte count and SHA-256 in one pass.

The digest is always of the bytes written through this object's own descriptor: hashed as they
are written (a fragmented MP4's header as it was told in advance, then checked against the one
written), or (when the muxer went back and patched them) read back through that descriptor
with ``pread`` before it is closed, never through the path (docs/performance.rst).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from sense_plugin.errors import StorageError
from sense_plugin.hashing import sha256_of_fd
from sense_plugin.media.mp4header import RESERVE_BYTES, HeaderReserve, finish, free_box
from sense_plugin.media.sinkwork import HashThread, Writeback, fsync_in_background
from sense_plugin.media.throttle import TokenBucket

#: errno values that mean "the disk (or quota, or file size limit) is full".
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_HASH_READ = 1024 * 1024
_T = TypeVar("_T")
#: Read and write: a rewritten file is hashed back through the descriptor that wrote it.
_CREATE = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class WriteCancelled(Exception):
    """``should_stop`` became true while a write was waiting for bandwidth."""


class HashingSink:
    """A write-only, seekable binary file for ``av.open(sink, "w", ...)``.

    Every write is paced by the optional :class:`TokenBucket` (large writes are split so the
    pacing stays even), counted, and fed to SHA-256 as it goes, so the hash costs no second
    read. Muxers that only append (fragmented MP4, MPEG-TS) never seek. A muxer that seeks
    back and overwrites (Matroska rewrites its header, cues and duration at the end; plain
    MP4 patches ``mdat`` size) makes the running hash stale: the sink notices the overwrite and
    only then, in :meth:`close`, hashes the finished file again, read back through the same
    descriptor (while ``fsync`` runs on another thread). For a muxer known to do that,
    ``hash_while_writing=False`` skips the wasted first hash.

    ``OSError`` for a full disk, quota or file size limit becomes :class:`StorageError`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        throttle: TokenBucket | None = None,
        should_stop: Callable[[], bool] | None = None,
        fsync: bool = True,
        hash_while_writing: bool = True,
        mp4_header_room: bool = False,
    ) -> None:
        self.path = Path(path)
        self._throttle = throttle
        self._should_stop = should_stop
        self._fsync = fsync
        self._pos = 0
        self._end = 0  # bytes [0, _end) have been hashed in order
        self._digest: str | None = None
        #: True once a write landed somewhere other than the end of the file.
        self.rewrote = False
        #: Bytes handed to the disk, including any overwritten ones.
        self.bytes_written = 0
        self.seeks = 0
        #: True once :meth:`close` took the digest from reading the finished file back.
        self.read_back = False
        # created exclusively, never through a symlink (the export integrity rules, SECURITY)
        self._file = _storage(lambda: os.fdopen(os.open(self.path, _CREATE, 0o640), "r+b"))
        #: (st_dev, st_ino) of the descriptor written and hashed; set by close().
        self.identity = (0, 0)
        # with fsync on, the disk writes the file while it is made (sinkwork.Writeback)
        self._writeback = Writeback(self._file.fileno()) if fsync else None
        self._hasher = HashThread()  # started last: nothing to stop if the open fails
        # Off for muxers known to rewrite (Matroska): the digest then comes from the file only.
        self._live = hash_while_writing and not mp4_header_room
        # Fragmented MP4: a free box goes after moov, for the durations written at the end.
        self._reserve = HeaderReserve() if mp4_header_room else None
        self._shift_at = 1 << 62  # muxer positions from here on are _shift bytes further
        self._shift = 0
        #: Fragmented MP4: given the header as the muxer wrote it (room included), the bytes
        #: :meth:`finish_mp4_header` will make of it, or None (see :meth:`_take_header`).
        self.header_predictor: Callable[[bytes], bytes | None] | None = None
        self._predicted = b""  # the header hashed ahead of the durations written into it
        self._predicted_ok = False  # ... and found in the file once they were written

    # -- the file protocol used by PyAV ------------------------------------------------------

    def writable(self) -> bool:
        """Always true: the sink is write-only."""
        return True

    def seekable(self) -> bool:
        """True: muxers may seek back (the digest then comes from the file)."""
        return True

    def write(self, data: bytes) -> int:
        """Write ``data`` at the current position; returns ``len(data)``."""
        size = len(data)
        hashed = data
        if self._reserve is not None:
            data = hashed = self._hold_header(data)
            if self._predicted:  # the header as it will be, then the rest as written
                hashed = self._predicted + data[len(self._predicted):]
        if self._pos != self._end:
            self.rewrote = True
        elif self._live and not self.rewrote:
            self._hasher.update(hashed)
        if self._throttle is None or self._throttle.rate_kbps == 0:
            self._write_raw(data)
        else:
            self._paced_write(memoryview(data))
        self._pos += size
        self._end = max(self._end, self._pos)
        self.bytes_written += size
        return size

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the write position (a seek to the current end costs nothing)."""
        target = {os.SEEK_SET: offset, os.SEEK_CUR: self._pos + offset,
                  os.SEEK_END: self._end + offset}[whence]
        if target != self._pos:
            self.seeks += 1
            if self._reserve is not None:  # a seek before moov is complete: no room made
                self._write_raw(self._take_header(None))
            offset = target + (self._shift if target >= self._shift_at else 0)
            _storage(lambda: self._file.seek(offset))
            self._pos = target
        return self._pos

    def tell(self) -> int:
        """The current write position."""
        return self._pos

    def flush(self) -> None:
        """Flush Python's buffer to the operating system."""
        _storage(self._file.flush)

    def _hold_header(self, data: bytes) -> bytes:
        """Keep the leading bytes until moov is complete; then all of them, with the room."""
        assert self._reserve is not None
        end = self._reserve.feed(data)
        if end is None:
            return b""
        return self._take_header(end if end >= 0 else None)

    def _take_header(self, moov_end: int | None) -> bytes:
        """The held bytes, with a free box at ``moov_end`` (None: as they were)."""
        assert self._reserve is not None
        head, self._reserve = bytes(self._reserve.head), None
        if moov_end is None:
            return head
        self._shift_at, self._shift = moov_end, RESERVE_BYTES
        header = head[:moov_end] + free_box(RESERVE_BYTES)
        self._predict(header)
        return header + head[moov_end:]

    def _predict(self, header: bytes) -> None:
        """Hash from the start after all, if the final header can be told now.

        SHA-256 sees the bytes in file order, and the durations go into the header only when
        the file is complete; without a prediction the whole file is read back at the end. A
        predicted header is hashed in place of the one written, then the body as it is
        written; :meth:`finish_mp4_header` checks the header it wrote against the prediction
        (a wrong one costs the read-back, as without).
        """
        if self.header_predictor is None or self._live:
            return
        predicted = self.header_predictor(header)
        if predicted is not None and len(predicted) == len(header):
            self._predicted, self._live = predicted, True

    def finish_mp4_header(self) -> bool:
        """Write the durations into the header of the complete fragmented MP4 (see mp4header).

        Call after the muxer has closed and before :meth:`close`; the digest then comes from
        the finished file. False when the file had no room for them (left as written).
        """
        if self._reserve is not None:
            self._write_raw(self._take_header(None))
        if not self._shift:
            return False
        _storage(self._file.flush)
        end = self._file.tell()
        done = _storage(lambda: finish(self._file))  # the descriptor written, not the path
        _storage(lambda: self._file.seek(end))
        _storage(self._file.flush)
        self._predicted_ok = bool(self._predicted) and \
            self._read_back(len(self._predicted)) == self._predicted
        return done

    def _read_back(self, size: int) -> bytes:
        """The first ``size`` bytes of the file, read through the descriptor written."""
        return _storage(lambda: os.pread(self._file.fileno(), size, 0))

    def close(self) -> None:
        """Flush, fsync, hash if the file was rewritten, and close; the digest is then known.

        A rewritten file is read back through this descriptor, so the digest is of the bytes
        written here even if another file took the path meanwhile; the read overlaps the
        ``fsync`` (both release the GIL), so it adds little to the wall time.
        """
        if self._file.closed:
            return
        synced: Future[None] | None = None
        try:
            if self._reserve is not None:  # moov never completed: the bytes as written
                self._write_raw(self._take_header(None))
            _storage(self._file.flush)
            fd = self._file.fileno()
            if self._writeback is not None:
                _storage(self._writeback.finish)
            synced = fsync_in_background(fd) if self._fsync else None
            digest = self._hasher.finish()
            self.read_back = self.rewrote or not self._live or \
                (bool(self._predicted) and not self._predicted_ok)
            if self.read_back:
                digest = _storage(lambda: sha256_of_fd(fd, read_bytes=_HASH_READ))
            st = os.fstat(fd)
            self.identity = (st.st_dev, st.st_ino)
        finally:
            try:
                if self._writeback is not None:  # ended already unless the close failed
                    with contextlib.suppress(OSError):
                        self._writeback.finish()
                if synced is not None:  # the descriptor stays open until fsync returned
                    _storage(synced.result)
            finally:
                self._file.close()
        self._digest = digest.hexdigest()

    def __enter__(self) -> HashingSink:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the file without a digest (use :meth:`close` for a finished file)."""
        self._hasher.finish()
        if self._writeback is not None:  # joined before the descriptor it syncs is closed
            with contextlib.suppress(OSError):  # the file is being given up anyway
                self._writeback.finish()
        try:
            self._file.close()
        except OSError as error:
            if kind is None:  # don't mask the error that is already propagating
                _raise_storage(error)
                raise

    # -- results -----------------------------------------------------------------------------

    @property
    def size_bytes(self) -> int:
        """Size of the file written so far."""
        return self._end + self._shift

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the complete file; available after :meth:`close`."""
        if self._digest is None:
            raise RuntimeError("the digest is known only after close()")
        return self._digest

    def _paced_write(self, view: memoryview) -> None:
        throttle = self._throttle
        assert throttle is not None
        step = throttle.chunk_bytes()
        for start in range(0, len(view), step):
            chunk = view[start : start + step]
            if not throttle.consume(len(chunk), self._should_stop):
                raise WriteCancelled()
            self._write_raw(chunk)

    def _write_raw(self, data: bytes | memoryview) -> None:
        try:
            self._file.write(data)
        except OSError as exc:
            _raise_storage(exc)
            raise
        if self._writeback is not None:
            self._writeback.wrote(len(data))


def _storage(action: Callable[[], _T]) -> _T:
    """Run a file operation, turning a full disk into :class:`StorageError`."""
    try:
        return action()
    except OSError as exc:
        _raise_storage(exc)
        raise


def _raise_storage(exc: OSError) -> None:
    """Raise :class:`StorageError` from ``exc`` if it means the storage is full."""
    if exc.errno in STORAGE_ERRNOS:
        raise StorageError(f"export storage is full: {os.strerror(exc.errno or 0)}") from exc
