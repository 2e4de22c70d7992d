"""Cut a time range out of archive segments by stream copy into one MP4, Matroska or TS file."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable
from functools import partial
from typing import NoReturn

import av

from sense_plugin.errors import MediaError, SenseError, StorageError
from sense_plugin.media.bitstream import US
from sense_plugin.media.cutspec import CutCancelled, CutRequest, CutResult, Gap, SourceSegment
from sense_plugin.media.cutter import Cutter
from sense_plugin.media.endplan import predict_header
from sense_plugin.media.sink import STORAGE_ERRNOS, HashingSink, WriteCancelled
from sense_plugin.media.throttle import TokenBucket
from sense_plugin.outputpaths import TEMP_SUFFIX
from sense_plugin.safefs import rename_exclusive

__all__ = [
    "BUFFER_BYTES", "OUTPUT_FORMATS", "US", "CutCancelled",
    "CutRequest", "CutResult", "Gap", "SourceSegment", "cut",
]

#: Output format → (FFmpeg muxer, muxer options). MP4 is fragmented: streamed, readable up to
#: its last fragment; ``delay_moov`` keeps start offsets (edit lists), the durations are filled
#: in at the end (``HashingSink.finish_mp4_header``), ``skip_trailer`` leaves out ``mfra`` (its
#: absolute offsets would not account for the room made after ``moov``).
OUTPUT_FORMATS: dict[str, tuple[str, dict[str, str]]] = {
    "mp4": ("mp4", {"movflags": "frag_keyframe+empty_moov+delay_moov+default_base_moof"
                                "+skip_trailer"}),
    "mkv": ("matroska", {}),
    "ts": ("mpegts", {}),
}
#: AVIO buffer between the muxer and the Python sink; large buffers mean few Python calls.
BUFFER_BYTES = 1024 * 1024


def cut(
    request: CutRequest,
    *,
    throttle: TokenBucket | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    should_finish: Callable[[], bool] | None = None,
    progress_interval_s: float = 0.2,
    fsync: bool = True,
) -> CutResult:
    """Stream-copy ``request`` into ``request.out_path`` and describe the result.

    The file is written as ``out_path + ".part"`` and renamed only when complete; on any error
    or cancellation the partial file is deleted. ``throttle`` paces the writes (its rate may be
    changed from another thread while this runs). ``on_progress(covered_us, bytes_written)``
    receives the recorded archive microseconds copied so far, counted from the first frame and
    without gaps (never decreasing), and the bytes written so far; it is called at most every
    ``progress_interval_s`` and once at the end, where ``covered_us`` is the recorded time from
    the first frame to the end of the range. ``should_stop`` is checked for every packet and
    while waiting for bandwidth. ``should_finish`` (checked for every video packet) ends the
    range at the packet being read: the file is finished and kept (``result.stopped_us``).

    Raises :class:`NoRecordError` when no video lies in the range, :class:`CutCancelled`,
    :class:`StorageError` when the disk is full, and :class:`MediaError` for unreadable
    sources or muxer failures.
    """
    if request.fmt not in OUTPUT_FORMATS or request.source.end_us <= request.source.start_us:
        raise ValueError(f"bad cut request: format {request.fmt!r}, empty or reversed range")
    muxer, options = OUTPUT_FORMATS[request.fmt]
    # A text track in fragmented MP4 aborts FFmpeg 6's muxer (movenc next_dts assertion):
    # with subtitles the MP4 is a plain one, its index written at the end (media/renderrun.py).
    fragmented = request.fmt == "mp4" and not request.subtitles
    if request.fmt == "mp4" and not fragmented:
        options = {}
    stop = should_stop or _never

    def write(tmp: str) -> tuple[Cutter, HashingSink]:
        with HashingSink(tmp, throttle=throttle, should_stop=stop, fsync=fsync,
                         hash_while_writing=request.fmt == "ts" or fragmented,
                         mp4_header_room=fragmented) as sink:
            with av.open(sink, "w", format=muxer, options=options,
                         buffer_size=BUFFER_BYTES) as output:
                cutter = Cutter(request, output, stop, on_progress, progress_interval_s,
                                 lambda: sink.bytes_written, should_finish)
                if fragmented:  # hashed as it is written when its end can be told now
                    sink.header_predictor = partial(predict_header, cutter, output)
                cutter.run()
            if fragmented:
                sink.finish_mp4_header()
            sink.close()
        return cutter, sink

    return write_then_rename(request.out_path, write)


def write_then_rename(out_path: str, write: Callable[[str], tuple[Cutter, HashingSink]]
                      ) -> CutResult:
    """The result of a cut that ``write`` makes into the temporary file it is given.

    The file (``out_path + ".part"``) is renamed to ``out_path`` once ``write`` returns (never
    over an existing file: -18 naming it); on
    any failure it is deleted and the typed error raised (:func:`raise_translated`). The
    result names the written file's identity (device, inode).
    """
    tmp, done = out_path + TEMP_SUFFIX, False
    try:
        cutter, sink = write(tmp)
        rename_exclusive(tmp, out_path)  # never over another device's file
        done = True
    except Exception as exc:
        raise_translated(exc, os.path.basename(out_path))
    finally:
        if not done:
            _unlink_quietly(tmp)
    file_dev, file_ino = sink.identity
    return dataclasses.replace(cutter.result(sink.size_bytes, sink.sha256),
                               file_dev=file_dev, file_ino=file_ino)


def raise_translated(exc: Exception, name: str) -> NoReturn:
    """Raise the typed error for a failed write of ``name`` (cut or render) that raised
    ``exc``: cancelled, storage full, a media error, or the first error itself."""
    first = _first_cause(exc)
    error = _translate(first, name)
    if error is first:
        raise error from None
    raise error from first


def _first_cause(exc: Exception) -> Exception:
    """The error that started a failure. Closing the muxer after a failure writes the trailer,
    which can fail again (the disk still full, the sink still cancelled) and hide the first
    error; the deepest typed error of the chain wins, else the deepest error."""
    chain = [exc]
    while isinstance(chain[-1].__context__, Exception):
        chain.append(chain[-1].__context__)
    typed = [e for e in chain if isinstance(e, _TYPED)]
    return typed[-1] if typed else chain[-1]


def _translate(first: Exception, name: str) -> Exception:
    """The typed error to raise for a failed cut whose first error was ``first``."""
    if isinstance(first, CutCancelled | WriteCancelled):
        return CutCancelled(f"export to {name} cancelled")
    if isinstance(first, av.FFmpegError):
        return MediaError(f"cannot write {name}: {first}")
    if isinstance(first, OSError):
        if first.errno in STORAGE_ERRNOS:
            return StorageError(f"export storage is full: {os.strerror(first.errno or 0)}")
        return MediaError(f"cannot write {name}: {first}")
    return first  # SenseError, MediaError, or a bug


_TYPED = (SenseError, MediaError, CutCancelled, WriteCancelled)


def _never() -> bool:
    return False


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
