"""Running one device job: plan from the archive, cut in a worker, track progress and rate.

The runner changes no job status: :meth:`JobRunner.run` returns an
:data:`~sense_plugin.export.outcome.Outcome` and the job's
:class:`~sense_plugin.export.jobrun.JobRun` hands it to the job book. It reports running
figures (progress, bytes, rate) through the book, which keeps them in memory. It keeps no
state of its own about jobs: what was asked of one, and its worker, are on its run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import replace
from typing import Any, TypeVar

from sense_plugin import safefs
from sense_plugin.archive.service import Archive
from sense_plugin.config import Config
from sense_plugin.errors import GeneralError, ResultCode, SenseError, incident_error
from sense_plugin.export import files, planning
from sense_plugin.export.book import JobBook
from sense_plugin.export.jobrun import Ask, JobRun
from sense_plugin.export.model import Export, Job
from sense_plugin.export.outcome import Completed, Interrupted, JobFailed, Outcome, Removed
from sense_plugin.export.pool import JobCancelledError, WorkerProcess
from sense_plugin.filemodel import NO_RECORDING, FileInfo
from sense_plugin.media.cutspec import SourceRange, SourceSegment
from sense_plugin.media.messages import CutJob, Done
from sense_plugin.media.remux import BUFFER_BYTES

log = logging.getLogger(__name__)
T = TypeVar("T")
#: Plans a job's cut: the worker's instructions, the sources held open, the export
#: directory's fd (the caller closes it).
Planner = Callable[[Export, Job], Awaitable[tuple[CutJob, planning.StreamPlan, int]]]
RATE_WINDOW_S = 1.0
_PROC = safefs.proc_available()


class _Tracker:
    """Turns worker progress messages into job progress and a measured write rate."""

    def __init__(self, book: JobBook, job: Job, recorded_us: int) -> None:
        self.book = book
        self.job = job
        self.recorded_us = max(recorded_us, 1)
        self.samples: deque[tuple[float, int]] = deque([(time.monotonic(), 0)])
        self.started = time.monotonic()
        self.last_progress = self.started
        self._last_figures = (-1, -1)

    def __call__(self, done_us: int, size_bytes: int, sent_s: float) -> None:
        """One progress message; ``sent_s``: the worker's monotonic time when it sent it.

        The rate is measured between the worker's stamps: a busy event loop reads several
        messages at once, and timing them on arrival would count the bytes of a longer
        stretch of writing against a shorter one (a rate above the cap it keeps)."""
        if (done_us, size_bytes) != self._last_figures:
            self._last_figures = (done_us, size_bytes)
            self.last_progress = time.monotonic()  # the stall watchdog's clock: arrival
        self.samples.append((sent_s, size_bytes))
        while len(self.samples) > 2 and sent_s - self.samples[1][0] >= RATE_WINDOW_S:
            self.samples.popleft()
        t0, b0 = self.samples[0]
        rate = int((size_bytes - b0) * 8 / 1000 / (sent_s - t0)) if sent_s > t0 else \
            self.job.bandwidth_kbps
        self.book.report(self.job, done_us * 100 // self.recorded_us, size_bytes, rate)

    def average_kbps(self, size_bytes: int) -> int:
        return int(size_bytes * 8 / 1000 / max(time.monotonic() - self.started, 1e-3))


class JobRunner:
    """Plans and cuts the runs the dispatcher hands over, reading what was asked of each."""

    def __init__(self, config: Config, archive: Archive, book: JobBook, io: Executor,
                 runs: Mapping[tuple[int, int], JobRun], plan: Planner | None = None) -> None:
        """``runs``: the dispatcher's runs (the share of an export's bandwidth cap counts
        those of the export that are cutting); ``plan``: the planning step (unit tests pass
        a fake one; by default the archive's segments)."""
        self._config = config
        self._archive = archive
        self._book = book
        self._io = io
        self._runs = runs
        self._plan_cut: Planner = plan or self._plan

    async def run(self, run: JobRun, export: Export, proc: WorkerProcess) -> Outcome:
        """Run the (SYNCING) job of ``run`` on ``proc``; what became of it."""
        job = run.job
        dir_fd: int | None = None
        completed = False
        plan = planning.StreamPlan([], 1, 0)
        try:
            cut_job, plan, dir_fd = await self._plan_cut(export, job)
            log.info("export %s device %s started (%s)", job.export_id, job.device_id,
                     cut_job.name)
            if run.asked is not None:
                raise JobCancelledError()  # stopped before anything was written
            tracker = _Tracker(self._book, job, plan.recorded_us)
            done = await self._cut(export, run, proc, cut_job, tracker)
            for written in done.files:
                await self._run_io(files.confirm_output, export,
                                   self._config.server.export_roots, dir_fd, written)
            completed = True
            return self._completed(job, done, tracker, plan.short_reason)
        except JobCancelledError:
            return self._cancelled(run)
        except SenseError as exc:
            if run.asked is not None and exc.code is ResultCode.NO_RECORD:
                return self._cancelled(run)  # stopped before its first frame
            return JobFailed(int(exc.code), exc.description)
        except Exception:
            error = incident_error(log, f"export {job.export_id} device {job.device_id} failed",
                                   "unexpected failure")
            return JobFailed(int(error.code), error.description)
        finally:
            if dir_fd is not None:
                os.close(dir_fd)
            planning.release(plan.held_fds)
            # a worker killed mid-run (or a failure) leaves files nobody lists
            if dir_fd is not None and not completed:
                await self._run_io(files.remove_partial, export, job,
                                   self._config.server.export_roots)

    @staticmethod
    def _cancelled(run: JobRun) -> Outcome:
        if run.asked is Ask.SHUTDOWN:
            log.info("export %s device %s stopped by the shutdown; it restarts on the next "
                     "start", run.job.export_id, run.job.device_id)
            return Interrupted()
        return Removed()

    async def _watch(self, export: Export, run: JobRun, proc: WorkerProcess,
                     tracker: _Tracker) -> None:
        """Bandwidth 0 once the worker stops reporting; after ``stall_s`` kill it (FAILED).

        A capped job reports progress while it waits for its bandwidth too (the throttle's
        heartbeat), so a paced job is judged like any other: at most ``stall_s`` more is
        allowed for the time between its muxer buffers (``docs/scheduling.rst``).
        """
        stall_s = self._config.export.stall_s
        while True:
            await asyncio.sleep(min(1.0, stall_s / 4))
            share = self._share_kbps(export)
            paced_s = 2 * BUFFER_BYTES * 8 / 1000 / share if share > 0 else 0.0
            idle = time.monotonic() - tracker.last_progress
            if idle >= 2 * RATE_WINDOW_S + min(paced_s, stall_s):
                self._book.report_rate(run.job, 0)
            if idle >= stall_s + min(paced_s, stall_s):
                log.warning("export %s device %s: no progress for %.0f s; stopping its worker",
                            run.job.export_id, run.job.device_id, idle)
                run.stalled = True
                proc.kill()
                return

    async def _cut(self, export: Export, run: JobRun, proc: WorkerProcess, cut_job: CutJob,
                   tracker: _Tracker) -> Done:
        """Run the cut on the worker with its sources pinned, watched for stalls."""
        job = run.job
        token = self._archive.pin(job.device_id, job.start_us, job.end_us)
        run.worker = proc
        self._rebalance(export)
        watchdog = asyncio.create_task(self._watch(export, run, proc, tracker))
        try:
            return await proc.run(cut_job, tracker)
        except SenseError:
            if run.stalled:
                raise StalledError(self._config.export.stall_s) from None
            raise
        finally:
            watchdog.cancel()
            run.worker = None
            self._archive.unpin(token)
            self._rebalance(export)

    async def _plan(self, export: Export,
                    job: Job) -> tuple[CutJob, planning.StreamPlan, int]:
        if export.options.snapshot:
            segments, instant = await planning.snapshot_source(self._archive, job,
                                                               export.options.live)
            plan = planning.StreamPlan(segments, 1, 0)
            start_us, end_us = instant, instant + 1
        else:
            run = self._runs.get(job.key)
            plan = await planning.stream_source(
                self._archive, job, lambda: run is not None and run.asked is not None)
            start_us, end_us = job.start_us, job.end_us
        segments = plan.segments
        name = files.planned_name(export, job)
        try:
            dir_fd = await self._run_io(files.open_job_directory, export, job,
                                        self._config.server.export_roots, plan.estimate)
        except BaseException:
            planning.release(plan.held_fds)
            raise
        # the worker writes through the directory fd held here: nothing swapped in later
        # on the way from the root can redirect it (safefs.proc_path)
        out_path = (safefs.proc_path(dir_fd, name) if _PROC
                    else str(export.directory / name))
        cut_job = CutJob(
            source=SourceRange(tuple(SourceSegment(s.path_text, s.start_us, s.end_us)
                                     for s in segments), start_us, end_us),
            fmt=export.fmt, out_path=out_path, name=name,
            bandwidth_kbps=self._share_kbps(export, extra=1), device_id=job.device_id,
            title=job.device_name, comment=f"export {export.export_id} {export.name}".rstrip(),
            options=export.options.for_device(job.index), export_id=export.export_id,
        )
        return cut_job, plan, dir_fd

    async def _run_io(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, func, *args)

    def _share_kbps(self, export: Export, extra: int = 0) -> float:
        """This export's cap divided among its running device jobs."""
        if export.bandwidth_limit_kbps <= 0:
            return 0.0
        running = sum(1 for j in export.jobs if self._worker(j) is not None) + extra
        return export.bandwidth_limit_kbps / max(running, 1)

    def _rebalance(self, export: Export) -> None:
        if export.bandwidth_limit_kbps <= 0:
            return
        share = self._share_kbps(export)
        for other in export.jobs:
            proc = self._worker(other)
            if proc is not None:
                proc.set_rate(share)

    def _worker(self, job: Job) -> WorkerProcess | None:
        run = self._runs.get(job.key)
        return None if run is None else run.worker

    @staticmethod
    def _completed(job: Job, done: Done, tracker: _Tracker, short_reason: str) -> Completed:
        infos = tuple(with_reasons(w.info, job.end_us, short_reason) for w in done.files)
        size = sum(f.size_bytes for f in infos)
        kbps = tracker.average_kbps(size)
        log.info("export %s device %s completed: %s, %d bytes in %.1f s (%d kbit/s), sha256 %s",
                 job.export_id, job.device_id, infos[0].name, infos[0].size_bytes,
                 time.monotonic() - tracker.started, kbps, infos[0].sha256)
        return Completed(infos, done.stopped_us, done.split, kbps, done.note)


def with_reasons(info: FileInfo, end_us: int, short_reason: str) -> FileInfo:
    """``info`` with a reason on each gap (docs/evidence.rst, "Gaps"): a hole the cut found
    is unrecorded time; the trailing gap of a recording that did not reach the end in time
    says so."""
    if not info.gaps:
        return info
    gaps = tuple(replace(g, reason=short_reason if short_reason and g.end_us >= end_us
                         else NO_RECORDING) for g in info.gaps)
    return replace(info, gaps=gaps)


class StalledError(GeneralError):
    """The worker made no progress for ``export.stall_s`` and was stopped (-18)."""

    def __init__(self, stall_s: float) -> None:
        super().__init__(f"the export worker made no progress for {stall_s:g} s (stalled) and "
                         "was stopped; retry the export")
