"""Persistent export worker processes, driven from the event loop over pipes.

Each worker is a long-lived process (``forkserver`` start method; PyAV imported once) that
runs one cut at a time. The messages are the dataclasses of ``media/messages.py``.

The parent never blocks: replies are read by an ``add_reader`` callback. When a worker dies
mid-job the parent fails that job, deletes its temporary file and starts a new worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from multiprocessing import forkserver
from multiprocessing.connection import Connection
from pathlib import Path

from sense_plugin.errors import GeneralError, SenseError, error_for_code
from sense_plugin.media import worker
from sense_plugin.media.cutspec import SourceSegment
from sense_plugin.media.messages import (
    TEMP_SUFFIX,
    Cancel,
    Cancelled,
    Control,
    CutJob,
    Done,
    Failed,
    FeedSegments,
    Finish,
    Progress,
    Reply,
    SetRate,
    Shutdown,
)

log = logging.getLogger(__name__)
#: ``(done_us, size_bytes, sent_s)`` of each :class:`Progress` the worker sends.
ProgressCallback = Callable[[int, int, float], None]
STOP_GRACE_S = 1.0


class JobCancelledError(Exception):
    """The job was cancelled (remove or shutdown) and its partial file deleted."""


class WorkerProcess:
    """One export worker process and the job it is running, if any."""

    def __init__(self, context: multiprocessing.context.BaseContext) -> None:
        self._context = context
        parent, child = context.Pipe()
        self._conn: Connection = parent
        self._process = context.Process(  # type: ignore[attr-defined]
            target=worker.worker_main, args=(child,), daemon=True, name="sense-export"
        )
        self._process.start()
        child.close()
        self._future: asyncio.Future[Done] | None = None
        self._on_progress: ProgressCallback | None = None
        self._temp_path: str | None = None
        self._reading = False

    @property
    def alive(self) -> bool:
        return bool(self._process.is_alive())

    async def run(self, job: CutJob, on_progress: ProgressCallback) -> Done:
        """Run one cut; returns what the child wrote or raises a coded error."""
        loop = asyncio.get_running_loop()
        self._future = loop.create_future()
        self._on_progress = on_progress
        self._temp_path = job.out_path + TEMP_SUFFIX
        loop.add_reader(self._conn.fileno(), self._readable)
        self._reading = True
        try:
            self._conn.send(job)
            return await self._future
        finally:
            self._stop_reading(loop)
            self._future = None

    def set_rate(self, kbps: float) -> None:
        """Change the running job's bandwidth cap (0 = unlimited)."""
        self._send(SetRate(kbps))

    def finish(self) -> None:
        """Ask the running job to end its file now and keep it (``action=stop``)."""
        self._send(Finish())

    def feed(self, segments: tuple[SourceSegment, ...], ended: bool) -> None:
        """Hand a live job cut while it records its new segments (media/follow.py)."""
        self._send(FeedSegments(segments, ended))

    async def cancel(self) -> None:
        """Ask the running job to stop; kill the process if it has not within a second."""
        future = self._future
        if future is None:
            return
        self._send(Cancel())
        with contextlib.suppress(TimeoutError, JobCancelledError, SenseError):
            async with asyncio.timeout(STOP_GRACE_S):
                await asyncio.shield(future)
        if not future.done():
            log.warning("export worker %s did not stop in time; killing it", self._process.pid)
            self.kill()
            self._fail(JobCancelledError())

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, AttributeError):
            self._process.kill()

    def _send(self, message: Control) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._conn.send(message)

    def _readable(self) -> None:
        try:
            while self._conn.poll():
                self._handle(self._conn.recv())
        except (EOFError, OSError):
            self._stop_reading(asyncio.get_running_loop())
            self._process.join(0.5)
            self._remove_temp()
            log.error(
                "export worker %s died (exit code %s)", self._process.pid, self._process.exitcode
            )
            self._fail(GeneralError("the export worker process died while cutting this device"))

    def _handle(self, message: Reply) -> None:
        if isinstance(message, Progress):
            if self._on_progress is not None:
                self._on_progress(message.done_us, message.size_bytes, message.sent_s)
        elif isinstance(message, Done):
            self._resolve(message)
        elif isinstance(message, Failed):
            if message.traceback:  # an unexpected failure, under its incident id
                log.error("export worker %s: %s\n%s", self._process.pid, message.description,
                          message.traceback)
            self._fail(error_for_code(message.code, message.description))
        elif isinstance(message, Cancelled):
            self._fail(JobCancelledError())

    def _resolve(self, result: Done) -> None:
        if self._future is not None and not self._future.done():
            self._future.set_result(result)

    def _fail(self, exc: BaseException) -> None:
        if self._future is not None and not self._future.done():
            self._future.set_exception(exc)

    def _stop_reading(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._reading:
            loop.remove_reader(self._conn.fileno())
            self._reading = False

    def _remove_temp(self) -> None:
        if self._temp_path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._temp_path)

    def close(self) -> None:
        """Stop the process (politely, then by force) and close the pipe."""
        self._send(Shutdown())
        self._process.join(STOP_GRACE_S)
        if self._process.is_alive():
            self.kill()
            self._process.join(STOP_GRACE_S)
        self._conn.close()


class WorkerPool:
    """A fixed number of worker processes handed out to one job at a time."""

    def __init__(self, size: int) -> None:
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["sense_plugin.media.worker"])
        self._size = size
        self._idle: asyncio.Queue[WorkerProcess] = asyncio.Queue()
        self._all: list[WorkerProcess] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, start_forkserver)
        for _ in range(self._size):
            proc = await loop.run_in_executor(None, WorkerProcess, self._context)
            self._all.append(proc)
            self._idle.put_nowait(proc)

    @property
    def idle_count(self) -> int:
        """Workers free now."""
        return self._idle.qsize()

    def take(self) -> WorkerProcess:
        """A free worker (the caller checked :attr:`idle_count`); give it to :meth:`renew`
        before use and back with :meth:`release`."""
        return self._idle.get_nowait()

    async def renew(self, proc: WorkerProcess) -> WorkerProcess:
        """``proc`` if it is alive, else a new worker in its place."""
        if proc.alive:
            return proc
        if proc in self._all:
            self._all.remove(proc)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, proc.close)
        proc = await loop.run_in_executor(None, WorkerProcess, self._context)
        self._all.append(proc)
        return proc

    def release(self, proc: WorkerProcess) -> None:
        self._idle.put_nowait(proc)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(None, p.close) for p in self._all))
        self._all.clear()


def start_forkserver() -> None:
    """Start the forkserver (once) with a module search path without the working directory.

    Python puts the working directory first on ``sys.path`` of the ``-c`` command that runs
    the forkserver, so a ``queue.py`` there would be imported by every export worker.
    ``PYTHONSAFEPATH`` keeps it out; the directory holding ``sense_plugin`` is passed on
    ``PYTHONPATH`` only when the package is not importable from elsewhere (a source checkout).
    """
    with _environment(_forkserver_environment()):
        forkserver.ensure_running()


def _forkserver_environment() -> dict[str, str]:
    env = {"PYTHONSAFEPATH": "1"}
    package_parent = str(Path(__file__).resolve().parents[2])
    cwd = os.getcwd()
    elsewhere = {os.path.abspath(p) for p in sys.path if p and os.path.abspath(p) != cwd}
    if package_parent not in elsewhere or package_parent == cwd:
        current = os.environ.get("PYTHONPATH", "")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (current, package_parent) if p)
    return env


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
