"""Running one device job: plan from the archive, cut in a worker, track progress and rate."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from sense_plugin.archive.service import Archive
from sense_plugin.config import Config
from sense_plugin.errors import GeneralError, ResultCode, SenseError
from sense_plugin.export import files, planning, safefs
from sense_plugin.export.model import FileInfo, Gap, Job, Status
from sense_plugin.export.pool import JobCancelledError, WorkerProcess
from sense_plugin.media.remux import BUFFER_BYTES
from sense_plugin.timestamps import now_us

if TYPE_CHECKING:
    from sense_plugin.export.engine import ExportEngine

log = logging.getLogger(__name__)
RATE_WINDOW_S = 1.0
_PROC = safefs.proc_available()


class _Tracker:
    """Turns worker progress messages into job progress and a measured write rate."""

    def __init__(self, job: Job, recorded_us: int) -> None:
        self.job = job
        self.recorded_us = max(recorded_us, 1)
        self.samples: deque[tuple[float, int]] = deque([(time.monotonic(), 0)])
        self.started = time.monotonic()
        self.last_progress = self.started
        self._last_figures = (-1, -1)

    def __call__(self, done_us: int, size_bytes: int) -> None:
        job = self.job
        if (done_us, size_bytes) != self._last_figures:
            self._last_figures = (done_us, size_bytes)
            self.last_progress = time.monotonic()
        job.progress = max(job.progress, min(99, done_us * 100 // self.recorded_us))
        job.bytes_written = size_bytes
        now = time.monotonic()
        self.samples.append((now, size_bytes))
        while len(self.samples) > 2 and now - self.samples[1][0] >= RATE_WINDOW_S:
            self.samples.popleft()
        t0, b0 = self.samples[0]
        if now > t0:
            job.bandwidth_kbps = int((size_bytes - b0) * 8 / 1000 / (now - t0))

    def average_kbps(self, size_bytes: int) -> int:
        return int(size_bytes * 8 / 1000 / max(time.monotonic() - self.started, 1e-3))


class JobRunner:
    """Runs jobs handed over by the engine's dispatchers; cancels them on request."""

    def __init__(self, config: Config, archive: Archive, executor: Executor,
                 engine: ExportEngine) -> None:
        self._config = config
        self._archive = archive
        self._engine = engine
        self._running: dict[tuple[int, int], WorkerProcess] = {}
        self._cancel: set[tuple[int, int]] = set()
        self._done: dict[tuple[int, int], asyncio.Event] = {}
        self._stalled: set[tuple[int, int]] = set()
        self._finish: set[tuple[int, int]] = set()  # stop asked: end the file, keep it
        self.closing = False

    async def _watch(self, job: Job, proc: WorkerProcess, tracker: _Tracker) -> None:
        """Bandwidth 0 once the worker stops reporting; after ``stall_s`` kill it (FAILED).

        A capped job reports only between muxer buffers (``BUFFER_BYTES``, paced at its
        share of the cap), so the time to write two of them is allowed on top.
        """
        stall_s = self._config.export.stall_s
        while True:
            await asyncio.sleep(min(1.0, stall_s / 4))
            share = self._share_kbps(job)
            paced_s = 2 * BUFFER_BYTES * 8 / 1000 / share if share > 0 else 0.0
            idle = time.monotonic() - tracker.last_progress
            if idle >= 2 * RATE_WINDOW_S + paced_s:
                job.bandwidth_kbps = 0
            if idle >= stall_s + paced_s:
                log.warning("export %s device %s: no progress for %.0f s; stopping its worker",
                            job.export_id, job.device_id, idle)
                self._stalled.add(job.key)
                proc.kill()
                return

    async def run(self, job: Job, proc: WorkerProcess) -> None:
        """Run ``job`` on ``proc`` to a terminal status (or back to PENDING on shutdown)."""
        engine = self._engine
        export = engine.export_of(job)
        live = export.options.live  # followed since its start: keeps start time and progress
        job.status = Status.SYNCING
        job.started_us = job.started_us if live and job.started_us else now_us()
        if not live:
            job.progress = 0
        self._done[job.key] = asyncio.Event()
        dir_fd: int | None = None
        try:
            await engine.save_job(job)
            payload, recorded_us, dir_fd = await self._plan(job)
            log.info("export %s device %s started (%s)", job.export_id, job.device_id,
                     payload["name"])
            if job.key in self._cancel or job.key in self._finish or self.closing:
                raise JobCancelledError()  # stopped before anything was written
            tracker = _Tracker(job, recorded_us)
            result = await self._cut(job, proc, payload, tracker)
            for written in result.get("parts") or [result]:
                await engine.run_io(files.confirm_output, export,
                                    self._config.server.export_roots, dir_fd,
                                    written.get("name", payload["name"]), written)
            self._complete(job, result, tracker)
        except JobCancelledError:
            if self.closing and job.key not in self._cancel:
                job.status, job.progress = Status.PENDING, 0  # restarts on the next start
                log.info("export %s device %s stopped by the shutdown; it restarts on the next "
                         "start", job.export_id, job.device_id)
            else:
                job.status = Status.REMOVED
        except SenseError as exc:
            if job.key in self._finish and exc.code is ResultCode.NO_RECORD:
                job.status = Status.REMOVED  # stopped before its first frame
            else:
                self._fail(job, int(exc.code), exc.description)
        except Exception:
            incident = uuid.uuid4().hex[:12]
            log.exception("incident %s: export %s device %s failed", incident, job.export_id,
                          job.device_id)
            self._fail(job, int(ResultCode.GENERAL_ERROR),
                       f"unexpected failure; reported as incident {incident}")
        finally:
            self._cancel.discard(job.key)
            self._finish.discard(job.key)
            if dir_fd is not None:
                os.close(dir_fd)
            if job.status is not Status.SYNCING and job.status is not Status.PENDING:
                job.finished_us = now_us()
            try:
                for step in (lambda: engine.save_job(job), lambda: engine.finish_if_done(export)):
                    await _logging_store_errors(job, step)
            finally:
                self._done.pop(job.key).set()

    async def _cut(self, job: Job, proc: WorkerProcess, payload: dict[str, Any],
                   tracker: _Tracker) -> dict[str, Any]:
        """Run the cut on the worker with its sources pinned, watched for stalls."""
        token = self._archive.pin(job.device_id, job.start_us, job.end_us)
        self._running[job.key] = proc
        self._rebalance(job)
        watchdog = asyncio.create_task(self._watch(job, proc, tracker))
        try:
            return await proc.run(payload, tracker)
        except SenseError:
            if job.key in self._stalled:
                raise StalledError(self._config.export.stall_s) from None
            raise
        finally:
            watchdog.cancel()
            self._stalled.discard(job.key)
            del self._running[job.key]
            self._archive.unpin(token)
            self._rebalance(job)

    async def finish(self, job: Job) -> None:
        """End a running job now keeping what it wrote (action=stop); wait until settled."""
        self._finish.add(job.key)
        proc = self._running.get(job.key)
        if proc is not None:
            proc.finish()
        done = self._done.get(job.key)
        if done is not None:
            await done.wait()

    def worker_of(self, job: Job) -> WorkerProcess | None:  # live exports (issue 14)
        """The worker running ``job`` now, if any (export/live.py feeds it segments)."""
        return self._running.get(job.key)

    async def cancel(self, job: Job) -> None:
        """Stop a running job (partial file deleted) and wait until it has settled."""
        self._cancel.add(job.key)
        proc = self._running.get(job.key)
        if proc is not None:
            await proc.cancel()
        done = self._done.get(job.key)
        if done is not None:
            await done.wait()

    async def cancel_all(self) -> None:
        """Interrupt every job in flight (shutdown): they go back to PENDING.

        Call with ``closing`` set, so no new job starts and one still being planned stops
        before it reaches a worker.
        """
        while self._done:
            await asyncio.gather(*(p.cancel() for p in list(self._running.values())))
            await asyncio.gather(*(e.wait() for e in list(self._done.values())))

    async def _plan(self, job: Job) -> tuple[dict[str, Any], int, int]:
        export = self._engine.export_of(job)
        if export.options.snapshot:
            segments, instant = await planning.snapshot_source(self._archive, job,
                                                               export.options.live)
            start_us, end_us, recorded_us, estimate = instant, instant + 1, 1, 0
        else:
            segments, recorded_us, estimate = await planning.stream_source(self._archive, job)
            start_us, end_us = job.start_us, job.end_us
        name = files.planned_name(export, job)
        dir_fd = await self._engine.run_io(files.open_job_directory, export, job,
                                           self._config.server.export_roots, estimate)
        # the worker writes through the directory fd held here: nothing swapped in later
        # on the way from the root can redirect it (safefs.proc_path)
        out_path = (safefs.proc_path(dir_fd, name) if _PROC
                    else str(export.directory / name))
        payload = {
            "segments": [{"path": s.path_text, "start_us": s.start_us, "end_us": s.end_us}
                         for s in segments],
            "start_us": start_us, "end_us": end_us, "fmt": export.fmt,
            "out_path": out_path, "name": name,
            "bandwidth_kbps": self._share_kbps(job, extra=1),
            "title": job.device_name, "device_id": job.device_id,
            "comment": f"export {export.export_id} {export.name}".rstrip(),
            "options": export.options.to_json(),
        }
        return payload, recorded_us, dir_fd

    def _share_kbps(self, job: Job, extra: int = 0) -> float:
        """This export's cap divided among its running device jobs."""
        export = self._engine.export_of(job)
        if export.bandwidth_limit_kbps <= 0:
            return 0.0
        running = sum(1 for j in export.jobs if j.key in self._running) + extra
        return export.bandwidth_limit_kbps / max(running, 1)

    def _rebalance(self, job: Job) -> None:
        export = self._engine.export_of(job)
        if export.bandwidth_limit_kbps <= 0:
            return
        share = self._share_kbps(job)
        for other in export.jobs:
            proc = self._running.get(other.key)
            if proc is not None:
                proc.set_rate(share)

    def _complete(self, job: Job, result: dict[str, Any], tracker: _Tracker) -> None:
        planned = files.job_file_name(self._engine.export_of(job), job)
        job.parts = tuple(_file_info(p, planned) for p in result.get("parts") or ())
        job.file = job.parts[0] if job.parts else _file_info(result, planned)
        if result.get("stopped_us") is not None:
            job.stopped, job.end_us = True, result["stopped_us"]
        job.bytes_written = sum(f.size_bytes for f in job.files)
        job.bandwidth_kbps = tracker.average_kbps(job.bytes_written)
        job.status, job.progress = Status.COMPLETED, 100
        seconds = time.monotonic() - tracker.started
        log.info("export %s device %s completed: %s, %d bytes in %.1f s (%d kbit/s), sha256 %s",
                 job.export_id, job.device_id, job.file.name, job.file.size_bytes, seconds,
                 job.bandwidth_kbps, job.file.sha256)

    @staticmethod
    def _fail(job: Job, code: int, description: str) -> None:
        job.status, job.errorcode, job.description = Status.FAILED, code, description
        log.info("export %s device %s failed: errorcode %d: %s", job.export_id, job.device_id,
                 code, description)


def _file_info(facts: dict[str, Any], planned: str) -> FileInfo:
    return FileInfo(
        name=facts.get("name") or planned, size_bytes=facts["size_bytes"],
        sha256=facts["sha256"], first_frame_us=facts["first_frame_us"],
        last_frame_us=facts["last_frame_us"], frame_count=facts["frame_count"],
        gaps=tuple(Gap(g["start_us"], g["end_us"]) for g in facts["gaps"]),
        oversize=bool(facts.get("oversize", False)),
    )


class StalledError(GeneralError):
    """The worker made no progress for ``export.stall_s`` and was stopped (-18)."""

    def __init__(self, stall_s: float) -> None:
        super().__init__(f"the export worker made no progress for {stall_s:g} s (stalled) and "
                         "was stopped; retry the export")


async def _logging_store_errors(job: Job, step: Callable[[], Awaitable[None]]) -> None:
    """Await a job store write; a failing store (locked, read-only) is logged, not raised.

    The job's state stays correct in memory, and the dispatcher and anyone waiting on the
    job must carry on: an exception here would stop the queue for good.
    """
    try:
        await step()
    except SenseError as exc:
        log.error("export %s device %s: %s", job.export_id, job.device_id, exc.description)
