"""A fake export worker and pool, and a dispatcher set up around them, for lifecycle unit tests.

:class:`FakeWorker` has the interface the runner and the live follower use of
``export/pool.py``'s ``WorkerProcess`` (run, finish, feed, cancel, kill, set_rate, alive). A
test scripts it: each cut waits until the test completes it (a real file is written into
the export directory, so the runner's check that the final name is the file written runs
for real), fails it, or lets it be stopped, cancelled or killed as a real worker would
answer. :class:`Lab` builds a real :class:`~sense_plugin.export.dispatch.JobDispatcher`
and :class:`~sense_plugin.export.book.JobBook` on the in-memory store, with a planning step
that opens the real export directory under ``tmp_path`` instead of reading an archive.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sense_plugin import safefs
from sense_plugin.config import Config
from sense_plugin.configmodel import ArchiveConfig, ExportConfig, ServerConfig
from sense_plugin.errors import GeneralError, ResultCode, error_for_code
from sense_plugin.export import files, planning
from sense_plugin.export.book import JobBook
from sense_plugin.export.dispatch import JobDispatcher
from sense_plugin.export.model import Export, Job, Status
from sense_plugin.export.pool import JobCancelledError
from sense_plugin.filemodel import FileInfo
from sense_plugin.media.cutspec import SourceRange, SourceSegment
from sense_plugin.media.exportoptions import ExportOptions
from sense_plugin.media.messages import CutJob, Done, Written
from tests.store_contract import T0, make_export
from tests.unit.memstore import MemoryJobStore

RETENTION_US = 3_600_000_000
ProgressCallback = Callable[[int, int, float], None]


class Clock:
    """A wall clock (µs since the epoch) that moves only when told."""

    def __init__(self, now_us: int = T0 + 10_000_000) -> None:
        self.now_us = now_us

    def __call__(self) -> int:
        return self.now_us

    def advance(self, seconds: float) -> None:
        self.now_us += int(seconds * 1_000_000)


class FakeWorker:
    """One scripted worker process: every cut waits for the test (or a stop) to end it."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.alive = True
        #: What happens on ``finish()``: "done" ends the file (stopped), "no_record" fails
        #: the cut as a stop before the first frame does, "ignore" does nothing.
        self.on_finish = "done"
        self.cuts: list[CutJob] = []
        self.rates: list[float] = []
        self.fed: list[tuple[tuple[SourceSegment, ...], bool]] = []
        self.finish_asked = self.cancel_asked = self.killed = False
        self.busy = asyncio.Event()
        self._result: asyncio.Future[Done] | None = None
        self._progress: ProgressCallback | None = None

    async def run(self, job: CutJob, on_progress: ProgressCallback) -> Done:
        self.cuts.append(job)
        self._result = asyncio.get_running_loop().create_future()
        self._progress = on_progress
        self.busy.set()
        try:
            return await self._result
        finally:
            self._result = self._progress = None
            self.busy.clear()

    @property
    def cut(self) -> CutJob:
        return self.cuts[-1]

    # -- what the test does ----------------------------------------------------------------
    def progress(self, done_us: int, size_bytes: int, sent_s: float | None = None) -> None:
        """A progress message, stamped ``sent_s`` (the worker's monotonic time; default now)."""
        assert self._progress is not None
        self._progress(done_us, size_bytes, time.monotonic() if sent_s is None else sent_s)

    def complete(self, stopped_us: int | None = None, data: bytes = b"\0" * 1000) -> None:
        """End the cut: its file written under the planned name, as the worker renames it."""
        path = Path(self.cut.out_path)
        path.write_bytes(data)
        st = os.stat(path)
        info = FileInfo(name=self.cut.name, size_bytes=len(data), sha256="ab" * 32,
                        first_frame_us=self.cut.source.start_us,
                        last_frame_us=self.cut.source.end_us - 1,
                        frame_count=25)
        self._settle(Done((Written(info, st.st_dev, st.st_ino),), stopped_us))

    def write_partial(self) -> Path:
        """A temporary file as a cut in progress leaves it."""
        path = Path(self.cut.out_path + ".part")
        path.write_bytes(b"partial")
        return path

    def fail(self, code: ResultCode, description: str) -> None:
        assert self._result is not None
        self._result.set_exception(error_for_code(int(code), description))

    # -- what the runner does --------------------------------------------------------------
    def set_rate(self, kbps: float) -> None:
        self.rates.append(kbps)

    def finish(self) -> None:
        self.finish_asked = True
        if self._result is None or self.on_finish == "ignore":
            return
        if self.on_finish == "done":
            self.complete(stopped_us=self.cut.source.start_us + 1_000_000)
        else:
            self.fail(ResultCode.NO_RECORD, "stopped before the first frame")

    def feed(self, segments: tuple[SourceSegment, ...], ended: bool) -> None:
        self.fed.append((segments, ended))

    async def cancel(self) -> None:
        self.cancel_asked = True
        await asyncio.sleep(0)  # the worker's reply comes back through the pipe
        if self._result is not None and not self._result.done():
            self._result.set_exception(JobCancelledError())

    def kill(self) -> None:
        self.killed, self.alive = True, False
        if self._result is not None and not self._result.done():
            self._result.set_exception(
                GeneralError("the export worker process died while cutting this device"))

    def _settle(self, done: Done) -> None:
        assert self._result is not None
        if not self._result.done():
            self._result.set_result(done)


class FakePool:
    """The worker pool's interface: fixed workers, a dead one replaced when renewed."""

    def __init__(self, size: int) -> None:
        self.workers = [FakeWorker(n) for n in range(size)]
        self._idle = list(self.workers)
        self.started = self.closed = False
        self.renewed = 0

    async def start(self) -> None:
        self.started = True

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    def take(self) -> FakeWorker:
        return self._idle.pop(0)

    async def renew(self, proc: FakeWorker) -> FakeWorker:
        await asyncio.sleep(0)
        if proc.alive:
            return proc
        self.renewed += 1
        fresh = FakeWorker(len(self.workers))
        self.workers[self.workers.index(proc)] = fresh
        return fresh

    def release(self, proc: FakeWorker) -> None:
        assert proc not in self._idle, "a worker released twice"
        self._idle.append(proc)

    async def close(self) -> None:
        self.closed = True


class FakeArchive:
    """What the runner and the live follower ask of the archive: pins, segments, recorders."""

    def __init__(self) -> None:
        self.pinned: dict[int, tuple[int, int, int]] = {}
        self.segment_list: list[Any] = []
        self.live_demo_ids: frozenset[int] = frozenset()
        self._token = 0

    def pin(self, device_id: int, start_us: int, end_us: int) -> int:
        self._token += 1
        self.pinned[self._token] = (device_id, start_us, end_us)
        return self._token

    def unpin(self, token: int) -> None:
        del self.pinned[token]

    async def segments(self, device_id: int, start_us: int, end_us: int) -> list[Any]:
        return [s for s in self.segment_list if s.end_us > start_us and s.start_us < end_us]

    def recorders(self) -> dict[int, Any]:
        return {}

    def add_segment(self, start_us: int, end_us: int) -> None:
        self.segment_list.append(SimpleNamespace(start_us=start_us, end_us=end_us,
                                                 path_text=f"/seg/{start_us}.mp4"))


class Finals:
    """The manifest finalizer: records what it was asked to write."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, Status]] = []

    async def __call__(self, export: Export, status: Status, at_us: int) -> None:
        self.calls.append((export.export_id, status))


class Lab:
    """A dispatcher with fake workers, the in-memory store, a fake clock and a planner that
    opens the real export directory (``tmp_path/exports``)."""

    def __init__(self, tmp_path: Path, workers: int = 1, stall_s: float = 60.0,
                 site_server: int | None = None) -> None:
        self.root = tmp_path / "exports"
        self.root.mkdir(exist_ok=True)
        self.config = Config(source="unit", server=ServerConfig(1, tmp_path, (self.root,)),
                             export=ExportConfig(max_concurrent_jobs=workers, stall_s=stall_s),
                             archive=ArchiveConfig(segment_seconds=1))
        self.store = MemoryJobStore()
        self.clock = Clock()
        self.finals = Finals()
        self.book = JobBook(self.store, self.finals, RETENTION_US, clock=self.clock,
                            site_server=site_server)
        self.pool = FakePool(workers)
        self.archive = FakeArchive()
        self.io = ThreadPoolExecutor(2)
        #: Set to make planning wait until the test sets it (a stop or remove mid-planning).
        self.plan_gate: asyncio.Event | None = None
        self.planned: list[tuple[int, int]] = []
        self.finished: list[tuple[int, int]] = []
        self.jobs = self.new_dispatcher()

    def new_dispatcher(self) -> JobDispatcher:
        """A dispatcher on this lab's book and pool (a restart makes a second one)."""
        jobs = JobDispatcher(self.config, self.archive, self.book, self.io,  # type: ignore
                             pool=self.pool, plan=self.plan)  # type: ignore[arg-type]
        jobs.on_job_finished.append(lambda job: self.finished.append(job.key))
        return jobs

    async def start(self) -> Lab:
        await self.book.open()
        await self.jobs.start()
        return self

    async def export(self, jobs: int = 1, owner: str = "alice", bandwidth_kbps: int = 0,
                     options: ExportOptions | None = None, queue: bool = True) -> Export:
        export = make_export(await self.store.new_id(), owner, jobs=jobs,
                             options=options or ExportOptions())
        export.out_base = str(self.root / "cases")
        export.bandwidth_limit_kbps = bandwidth_kbps
        for job in export.jobs:
            job.server_id = self.config.server.server_id
        safefs.make_export_dir(export.directory, (self.root,))
        await self.book.add(export)
        if queue:
            for job in export.jobs:
                self.jobs.enqueue(job)
        return export

    async def plan(self, export: Export, job: Job) -> tuple[CutJob, planning.StreamPlan, int]:
        self.planned.append(job.key)
        if self.plan_gate is not None:
            await self.plan_gate.wait()
        dir_fd = await asyncio.get_running_loop().run_in_executor(
            self.io, files.open_job_directory, export, job, (self.root,), 0)
        name = files.planned_name(export, job)
        source = SourceRange((SourceSegment("/seg/a.mp4", job.start_us, job.end_us),),
                             job.start_us, job.end_us)
        cut = CutJob(source=source, fmt=export.fmt,
                     out_path=str(export.directory / name), name=name, bandwidth_kbps=0,
                     device_id=job.device_id, title=job.device_name, comment="",
                     options=export.options, export_id=export.export_id)
        return cut, planning.StreamPlan([], job.end_us - job.start_us, 0), dir_fd

    async def cutting(self, job: Job) -> FakeWorker:
        """The worker once it is cutting ``job``."""
        for _ in range(1000):
            for worker in self.pool.workers:
                if worker.busy.is_set() and worker.cut.device_id == job.device_id \
                        and worker.cut.export_id == job.export_id:
                    return worker
            await asyncio.sleep(0.001)
        raise AssertionError(f"job {job.key} never reached a worker")

    async def close(self) -> None:
        await self.jobs.close()
        self.io.shutdown(wait=True)


async def settle(rounds: int = 20) -> None:
    """Let every ready task run a few rounds (no wall-clock wait)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


__all__ = ["T0", "Clock", "FakePool", "FakeWorker", "Lab", "settle"]
