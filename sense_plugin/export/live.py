"""Live exports (docs/exports.rst): follow the recording until it passes ``endtime``.

A live device job is SYNCING from the start. A stream copy (no ``<render>``, no subtitle
track) is cut while the recording grows: it takes a worker as soon as the fair queue gives
it one (``docs/scheduling.rst``; stopped before that, it ends REMOVED), and this module hands
that worker every newly indexed segment of the device (``media/follow.py``), so the job's
temporary file ``<final name>.part`` in the export directory grows with the recording and
is readable all along; it ends when the recording passes the end (the recorder's open
segments are fed once they hold the end on disk, docs/evidence.rst "The end"), at
``action=stop`` / keepalive (the end becomes now) or, when the camera stopped short of the
end, one segment length after it (``ended``). A camera that drops out does not end it
early: the gap is kept and reported. Rendered live exports wait without a worker (progress =
elapsed share of the range) until the recorder has passed their end, then are cut like an
archive job.
"""

from __future__ import annotations

import asyncio
import logging

from sense_plugin.archive.segment import Segment
from sense_plugin.archive.service import Archive
from sense_plugin.config import Config
from sense_plugin.demo_defaults import LIVE_SEGMENT_S as LIVE_DEMO_SEGMENT_S
from sense_plugin.errors import SenseError
from sense_plugin.export.book import JobBook
from sense_plugin.export.jobrun import Ask, JobRun
from sense_plugin.export.model import Job, Status
from sense_plugin.export.outcome import Removed
from sense_plugin.export.planning import open_partials, release
from sense_plugin.media.cutspec import SourceSegment
from sense_plugin.media.follow import cut_while_recording
from sense_plugin.timestamps import now_us

log = logging.getLogger(__name__)
POLL_S = 0.25
#: Share of the progress bar the waiting phase fills; the cut fills the rest.
WAIT_SHARE = 90
#: Beyond one segment length: the index settles, the recorder renames the closed segment.
SETTLE_US = 3_000_000


class LiveFollower:
    """Live device jobs: fed to their worker while they grow, or waited for, then cut.

    It keeps nothing per job: a live job's state (its stop, whether its cut began, its
    worker) is on its :class:`~sense_plugin.export.jobrun.JobRun`.
    """

    def __init__(self, config: Config, archive: Archive, book: JobBook) -> None:
        self._config, self._archive, self._book = config, archive, book

    async def follow(self, run: JobRun) -> None:
        """The run of a live job: SYNCING at once; cut as it records, or once it is complete.

        Removed while it waits for its recording, it is REMOVED; at the shutdown it ends as
        it is (SYNCING: it starts again next time)."""
        job = run.job
        try:
            await self._book.start(job, resumed=True)
            options = self._book.active_export(job.export_id).options
            if cut_while_recording(options.live, options.render is not None,
                                   options.timestamps == "subtitle", job.end_us):
                await self._grow(run)
                return
            stopped = await self._wait(run)
            if stopped and run.asked is Ask.FINISH:
                run.take_finish()
                job.stopped = True
                job.end_us = max(job.start_us + 1, min(job.end_us, now_us()))
                await self._wait_indexed(run, job.end_us + self._segment_us(job) + SETTLE_US)
                run.take_finish()  # a stop asked again meanwhile is the same stop
            if run.asked is not None:
                if run.asked is Ask.CANCEL and not job.terminal:
                    await run.record(Removed())
                return
            if job.status is not Status.SYNCING:  # removed meanwhile
                return
            await self._book.hand_over(job)
            await run.cut(holds=False)
        except SenseError as exc:  # the store failed: the job stays as it is in memory
            log.error("export %s device %s: %s", job.export_id, job.device_id, exc.description)

    async def _grow(self, run: JobRun) -> None:
        """Cut on a worker now, fed the recording's segments as they are indexed."""
        held: list[int] = []  # the recorder's open segments fed to the worker, until it ends
        feeder = asyncio.create_task(self._feed(run, held),
                                     name=f"export-feed-{run.job.export_id}")
        try:
            await run.cut(holds=True)  # it holds the worker until the range ends
        finally:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
            release(held)

    async def _feed(self, run: JobRun, held: list[int]) -> None:
        """Send the worker each new segment of the range; ``ended`` once the end (or a stop)
        lies a segment length and the settling time in the past, or once the recorder's open
        segments reach the end on disk: they are sent, read through descriptors added to
        ``held`` (closed once the cut ends)."""
        job = run.job
        export = self._book.active_export(job.export_id)
        last_start, ended = -(1 << 62), False
        deadline_us = job.end_us + self._segment_us(job) + SETTLE_US
        while not ended:
            await asyncio.sleep(POLL_S)
            if export.stopping:  # stop or keepalive: the worker ends the range at now
                deadline_us = min(deadline_us, now_us() + self._segment_us(job) + SETTLE_US)
            proc = run.worker
            if proc is None:
                continue
            now = now_us()
            found = await self._archive.segments(job.device_id, max(job.start_us, last_start),
                                                 max(now, job.end_us) + 1)
            new = [s for s in found if s.start_us > last_start]
            ended = now >= deadline_us
            if not ended and not export.stopping and now >= job.end_us \
                    and not any(s.end_us >= job.end_us for s in found):
                growing = await self._open_partials(job, held)
                new, ended = [*new, *(s for s in growing if s.start_us > last_start)], \
                    bool(growing)
            if new or ended:
                proc.feed(tuple(SourceSegment(s.path_text, s.start_us, s.end_us)
                                for s in sorted(new, key=lambda s: s.start_us)), ended)
                last_start = max([last_start, *(s.start_us for s in new)])

    async def _open_partials(self, job: Job, held: list[int]) -> list[Segment]:
        """The recorder's open segments of the job once they reach its end on disk
        (export/planning.py), their descriptors added to ``held``; else none."""
        recorder = self._archive.recorders().get(job.device_id)
        if recorder is None or recorder.open_span is None \
                or recorder.open_span[1] < job.end_us:
            return []
        growing, fds = await asyncio.get_running_loop().run_in_executor(
            None, open_partials, recorder.directory, job.device_id, job.end_us, False)
        held.extend(fds)
        return growing

    def _segment_us(self, job: Job) -> int:
        """How long the device's segments are: the recording is indexed that much later."""
        seconds = (LIVE_DEMO_SEGMENT_S if job.device_id in self._archive.live_demo_ids
                   else self._config.archive.segment_seconds)
        return int(seconds * 1_000_000)

    async def _wait(self, run: JobRun) -> bool:
        """Until the recording passes the end (False) or the run is asked to end (True)."""
        job = run.job
        deadline = job.end_us + self._segment_us(job) + SETTLE_US
        while True:
            now = now_us()
            span = max(job.end_us - job.start_us, 1)
            job.progress = max(job.progress, min(WAIT_SHARE, (now - job.start_us) * WAIT_SHARE
                                                 // span))
            if await self._indexed_past(job) or now >= deadline:
                return False
            if await run.wait_asked(POLL_S):
                return True

    async def _wait_indexed(self, run: JobRun, deadline_us: int) -> None:
        """Until the recording holds the (stopped) end, or the run is removed or shut down."""
        while not await self._indexed_past(run.job) and now_us() < deadline_us:
            if await run.wait_asked(POLL_S):
                return

    async def _indexed_past(self, job: Job) -> bool:
        """The recording holds the end: indexed, or being written past it (the cut then
        reads the open segment, export/planning.py)."""
        recorder = self._archive.recorders().get(job.device_id)
        if recorder is not None and recorder.open_span is not None \
                and recorder.open_span[1] >= job.end_us:
            return True
        segments = await self._archive.segments(job.device_id, job.end_us - 1, job.end_us + 1)
        return any(s.end_us >= job.end_us for s in segments)
