"""The export sink's helper threads: SHA-256 beside the writes, and early write-back.

Both run blocking calls that release the GIL (``hashlib`` on large blocks, ``fdatasync``), so
they overlap the demuxing and muxing on another core (docs/performance.rst).
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from concurrent.futures import Future

#: Chunks waiting for the hashing thread (1 MiB each from the muxer): bounds the memory held.
HASH_QUEUE_CHUNKS = 16
#: Bytes written between two background ``fdatasync`` calls: the final ``fsync`` then has at
#: most about this much left to write (the kernel would otherwise start only after 30 s or
#: when a tenth of the memory is dirty, i.e. at the final fsync for most exports).
WRITEBACK_BYTES = 32 * 1024 * 1024


class HashThread:
    """SHA-256 on a second thread, overlapped with demuxing and muxing.

    ``hashlib`` releases the GIL for inputs above 2 KiB, so the hash does not add to the
    export's wall time while a second core is free.
    """

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=HASH_QUEUE_CHUNKS)
        self._thread = threading.Thread(target=self._run, name="sink-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self.hash.update(chunk)

    def update(self, data: bytes) -> None:
        """Queue ``data`` for hashing (blocks while the queue is full)."""
        # keep a private copy unless the caller gave immutable bytes (PyAV does)
        self._queue.put(data if type(data) is bytes else bytes(data))

    def finish(self) -> hashlib._Hash:
        """Wait for the queued chunks; returns the hash object."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        return self.hash


class Writeback:
    """``fdatasync`` of a file being written, every :data:`WRITEBACK_BYTES`, on its own thread.

    The disk writes the export while it is made, instead of all of it at the final ``fsync``
    (which stays: it is what makes the whole file durable). An error of a background call is
    kept and raised by :meth:`finish`: the kernel reports a write-back error to one ``fsync``
    caller per descriptor, so the final ``fsync`` would not see it again.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._since = 0
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stop = False
        self._error: OSError | None = None
        self._thread: threading.Thread | None = None

    def wrote(self, size: int) -> None:
        """Count ``size`` bytes written; start a sync when enough are and none is running."""
        self._since += size
        if self._since < WRITEBACK_BYTES or not self._idle.is_set():
            return
        self._since = 0
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sink-writeback",
                                            daemon=True)
            self._thread.start()
        self._idle.clear()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if not self._idle.is_set():  # a sync was asked for: done even when stopping
                try:
                    os.fdatasync(self._fd)
                except OSError as exc:
                    self._error = self._error or exc
                self._idle.set()
            if self._stop:
                return

    def finish(self) -> None:
        """Stop the thread (after the sync asked for, if any); raise the first error it met."""
        if self._thread is not None:
            self._stop = True
            self._wake.set()
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def fsync_in_background(fd: int) -> Future[None]:
    """``os.fsync(fd)`` on a thread of its own; the future settles when it returns."""
    synced: Future[None] = Future()

    def run() -> None:
        try:
            os.fsync(fd)
        except BaseException as exc:  # handed to the caller, which raises it
            synced.set_exception(exc)
        else:
            synced.set_result(None)

    threading.Thread(target=run, name="sink-fsync", daemon=True).start()
    return synced
