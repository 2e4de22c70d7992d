"""Live exports (SPEC §10): follow the recording until it passes ``endtime``.

A live device job is SYNCING from the start. A stream copy (no ``<render>``, no subtitle
track) is cut while the recording grows: it takes a worker at once, and this module hands
that worker every newly indexed segment of the device (``media/follow.py``), so the job's
temporary file ``<final name>.part`` in the export directory grows with the recording and
is readable all along; it ends when the recording passes the end, at ``action=stop`` /
keepalive (the end becomes now) or, when the camera stopped short of the end, one segment
length after it (``ended``). A camera that drops out does not end it early: the gap is kept
and reported. Rendered live exports wait without a worker (progress = elapsed share of the
range) until the recording has passed their end, then are cut like an archive job.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sense_plugin.archive.service import LIVE_DEMO_SEGMENT_S, Archive
from sense_plugin.config import Config
from sense_plugin.export.model import Job, Status
from sense_plugin.media.follow import cut_while_recording
from sense_plugin.timestamps import now_us

if TYPE_CHECKING:
    from sense_plugin.export.engine import ExportEngine

log = logging.getLogger(__name__)
POLL_S = 0.25
#: Share of the progress bar the waiting phase fills; the cut fills the rest.
WAIT_SHARE = 90
#: Beyond one segment length: the index settles, the recorder renames the closed segment.
SETTLE_US = 3_000_000


class LiveFollower:
    """Live device jobs: fed to their worker while they grow, or waited for, then cut."""

    def __init__(self, config: Config, archive: Archive, engine: ExportEngine) -> None:
        self._config, self._archive, self._engine = config, archive, engine
        self._tasks: dict[tuple[int, int], asyncio.Task[None]] = {}
        self._stop: dict[tuple[int, int], asyncio.Event] = {}
        self._cutting: set[tuple[int, int]] = set()

    def follows(self, job: Job) -> bool:
        """True while the job waits for the recording (not once its cut runs)."""
        return job.key in self._tasks and job.key not in self._cutting

    def start(self, job: Job) -> None:
        self._stop[job.key] = asyncio.Event()
        self._tasks[job.key] = asyncio.create_task(self._follow(job),
                                                   name=f"export-live-{job.export_id}")

    async def stop(self, job: Job) -> None:
        """End the job's range now; wait until its cut has finished."""
        event, task = self._stop.get(job.key), self._tasks.get(job.key)
        if event is not None:
            event.set()
        if task is not None:
            await asyncio.shield(task)

    def cancel(self, job: Job) -> None:
        """Forget the job (removed): no cut follows."""
        task = self._tasks.get(job.key)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        """Forget the waiting jobs; the ones being cut end with the runner's shutdown."""
        waiting = [t for k, t in self._tasks.items() if k not in self._cutting]
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)

    async def _follow(self, job: Job) -> None:
        try:
            job.status, job.started_us = Status.SYNCING, job.started_us or now_us()
            await self._engine.save_job(job)
            options = self._engine.export_of(job).options
            if cut_while_recording(options.live, options.render is not None,
                       options.timestamps == "subtitle", job.end_us):
                await self._grow(job)
                return
            stopped = await self._wait(job)
            if stopped:
                job.stopped = True
                job.end_us = max(job.start_us + 1, min(job.end_us, now_us()))
                await self._wait_indexed(job, job.end_us + self._segment_us(job) + SETTLE_US)
            if job.status is not Status.SYNCING:  # removed meanwhile
                return
            job.status = Status.PENDING
            self._cutting.add(job.key)
            await self._engine.run_now(job)
        finally:
            self._cutting.discard(job.key)
            self._tasks.pop(job.key, None)
            self._stop.pop(job.key, None)

    async def _grow(self, job: Job) -> None:
        """Cut on a worker now, fed the recording's segments as they are indexed."""
        job.status = Status.PENDING
        self._cutting.add(job.key)
        feeder = asyncio.create_task(self._feed(job), name=f"export-feed-{job.export_id}")
        try:
            await self._engine.run_now(job)
        finally:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)

    async def _feed(self, job: Job) -> None:
        """Send the worker each new segment of the range; ``ended`` once the end (or a stop)
        lies a segment length and the settling time in the past."""
        export, last_start, ended = self._engine.export_of(job), -(1 << 62), False
        deadline_us = job.end_us + self._segment_us(job) + SETTLE_US
        while not ended:
            await asyncio.sleep(POLL_S)
            if export.stopping:  # stop or keepalive: the worker ends the range at now
                deadline_us = min(deadline_us, now_us() + self._segment_us(job) + SETTLE_US)
            proc = self._engine.runner.worker_of(job)
            if proc is None:
                continue
            now = now_us()
            found = await self._archive.segments(job.device_id, max(job.start_us, last_start),
                                                 max(now, job.end_us) + 1)
            new = [s for s in found if s.start_us > last_start]
            ended = now >= deadline_us
            if new or ended:
                proc.feed([{"path": s.path_text, "start_us": s.start_us, "end_us": s.end_us}
                           for s in new], ended)
                last_start = max([last_start, *(s.start_us for s in new)])

    def _segment_us(self, job: Job) -> int:
        """How long the device's segments are: the recording is indexed that much later."""
        seconds = (LIVE_DEMO_SEGMENT_S if job.device_id in self._archive.live_demo_ids
                   else self._config.archive.segment_seconds)
        return int(seconds * 1_000_000)

    async def _wait(self, job: Job) -> bool:
        """Until the recording passes the end (False) or a stop arrives (True)."""
        stop = self._stop[job.key]
        deadline = job.end_us + self._segment_us(job) + SETTLE_US
        while True:
            now = now_us()
            span = max(job.end_us - job.start_us, 1)
            job.progress = max(job.progress, min(WAIT_SHARE, (now - job.start_us) * WAIT_SHARE
                                                 // span))
            if await self._indexed_past(job) or now >= deadline:
                return False
            try:
                await asyncio.wait_for(stop.wait(), POLL_S)
                return True
            except TimeoutError:
                continue

    async def _wait_indexed(self, job: Job, deadline_us: int) -> None:
        while not await self._indexed_past(job) and now_us() < deadline_us:
            await asyncio.sleep(POLL_S)

    async def _indexed_past(self, job: Job) -> bool:
        segments = await self._archive.segments(job.device_id, job.end_us - 1, job.end_us + 1)
        return any(s.end_us >= job.end_us for s in segments)
