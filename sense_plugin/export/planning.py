"""Where a device job reads from: the archive segments of its range or its snapshot instant."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sense_plugin.archive.index import Segment
from sense_plugin.archive.service import Archive
from sense_plugin.demo_defaults import LIVE_SEGMENT_S
from sense_plugin.errors import NoRecordError
from sense_plugin.export.model import Job
from sense_plugin.export.nearest import nothing_at
from sense_plugin.export.newest import open_segment, recorder_partials
from sense_plugin.media.cutspec import SourceSegment
from sense_plugin.media.follow import recorded_until_us
from sense_plugin.media.snapshot import segment_at
from sense_plugin.timestamps import GAP_TOLERANCE_US, format_timestamp, now_us

log = logging.getLogger(__name__)

#: A live snapshot shows the newest frame of a segment that ended at most this long ago.
NEWEST_WINDOW_US = 10 * 60 * 1_000_000
#: Beyond one segment length: the recorder closes the segment, the index takes it in.
SETTLE_S = 3.0
_POLL_S = 0.25
_PROC = os.path.isdir("/proc/self/fd")


@dataclass
class StreamPlan:
    """Where a stream job reads from: archive segments, and the recorder's open segments
    when its end is being recorded (read through descriptors held until the cut ends)."""

    segments: list[Segment]
    recorded_us: int
    estimate: int
    held_fds: list[int] = field(default_factory=list)
    #: why the recording stops short of the end, where that is known (the trailing gap's)
    short_reason: str = ""


async def stream_source(archive: Archive, job: Job,
                        asked_to_end: Callable[[], bool] = lambda: False) -> StreamPlan:
    """The segments of a stream job, the recorded µs in its range and a size estimate.

    A range whose end the device is still recording waits for it (:func:`wait_recorded`),
    until ``asked_to_end()`` (a remove, stop or shutdown came meanwhile).
    """
    growing: list[Segment] = []
    fds: list[int] = []
    reason = ""
    if job.end_us <= now_us():
        growing, fds, reason = await wait_recorded(archive, job, asked_to_end)
    try:
        # audio of the range can sit in the next segment, before its first frame (cutter)
        indexed = await archive.segments(job.device_id, job.start_us, job.end_us + 1_000_000)
        opened = {s.start_us for s in growing}  # closed and indexed meanwhile: read once
        segments = sorted([*(s for s in indexed if s.start_us not in opened), *growing],
                          key=lambda s: s.start_us)
        recorded_us, estimate = _recorded(segments, job)
        if job.end_us > now_us():  # a live range being recorded: cut as it grows (media/follow)
            return StreamPlan(segments, job.end_us - job.start_us, estimate)
        if recorded_us <= 0:
            raise NoRecordError(
                f"nothing is recorded for device {job.device_id} between "
                f"{format_timestamp(job.start_us)} and {format_timestamp(job.end_us)}"
                + await archive.skipped_hint(job.device_id))
    except BaseException:
        release(fds)
        raise
    return StreamPlan(segments, recorded_us, estimate, fds, reason)


def _recorded(segments: list[Segment], job: Job) -> tuple[int, int]:
    """Recorded µs of the job's range in ``segments`` and the bytes they likely hold."""
    recorded_us = estimate = 0
    for seg in segments:
        overlap = min(seg.end_us, job.end_us) - max(seg.start_us, job.start_us)
        if overlap > 0:
            recorded_us += overlap
            estimate += seg.size_bytes * overlap // max(seg.end_us - seg.start_us, 1)
    return recorded_us, estimate


def release(fds: list[int]) -> None:
    """Close the descriptors of a :class:`StreamPlan` (after its cut)."""
    for fd in fds:
        os.close(fd)
    fds.clear()


async def snapshot_source(archive: Archive, job: Job, newest: bool) -> tuple[list[Segment], int]:
    """The segment showing a snapshot's instant, and the instant; -9 naming the nearest
    recorded times if none. Live: see :func:`newest_sources`."""
    instant = now_us() if newest else job.start_us
    if newest:
        return await newest_sources(archive, job.device_id, instant)
    # a hole shorter than the gap tolerance is no gap: its instants show the frame before
    near = await archive.segments(job.device_id, instant - GAP_TOLERANCE_US,
                                  instant + GAP_TOLERANCE_US + 1)
    if segment_at(near, instant) is None:
        raise NoRecordError(await nothing_at(archive, job.device_id, instant))
    return near, instant


async def newest_sources(archive: Archive, device_id: int,
                         now: int) -> tuple[list[Segment], int]:
    """A live snapshot's sources, newest last, and the instant ``now``: the newest complete
    segment of the last ``NEWEST_WINDOW_US`` and the segment being recorded (``newest``),
    whose newest frame is shown (:func:`media.snapshot.grab_newest`); -9 if neither."""
    recent = await archive.segments(device_id, now - NEWEST_WINDOW_US, now + 1)
    sources = sorted(recent, key=lambda s: s.end_us)[-1:]
    growing = await open_segment(archive, device_id)
    if growing is not None:
        sources.append(Segment(device_id, growing.start_us, growing.end_us, growing.path, 0))
    if not sources:
        raise NoRecordError(f"device {device_id} recorded nothing in the last "
                            f"{NEWEST_WINDOW_US // 60_000_000} minutes")
    return sources, now


async def wait_recorded(archive: Archive, job: Job,
                        asked_to_end: Callable[[], bool] = lambda: False,
                        ) -> tuple[list[Segment], list[int], str]:
    """Until the device's recording has passed the job's end, while its recorder still
    writes the segment holding that end; at most one segment length and :data:`SETTLE_S`
    (docs/evidence.rst, "The end").

    Returns the recorder's open segments to read (the end is on disk in them, not yet in a
    closed segment) with the descriptors they are read through, or none where the index
    holds the end; and, when the recording did not reach the end in time, why: the rest of
    the range is then a trailing gap that says so. Asked to end meanwhile, it stops waiting
    (the job is not cut: a remove need not wait a segment length for it).
    """
    device_id, end_us = job.device_id, job.end_us
    segment_s = (LIVE_SEGMENT_S if device_id in archive.live_demo_ids
                 else archive.config.archive.segment_seconds)
    loop = asyncio.get_running_loop()
    deadline_s = loop.time() + segment_s + SETTLE_S
    waited = False
    while (recorder := archive.recorders().get(device_id)) is not None \
            and recorder.open_span is not None and recorder.open_span[0] < end_us:
        found = await archive.segments(device_id, end_us - 1, end_us + 1)
        if any(s.end_us >= end_us for s in found):
            break
        late = loop.time() >= deadline_s
        if recorder.open_span[1] >= end_us or late:
            growing, fds = await loop.run_in_executor(
                None, open_partials, recorder.directory, device_id, end_us, late)
            if growing:
                log.info("export %s device %s: cut from the segment being recorded",
                         job.export_id, device_id)
                return growing, fds, _short(job, segment_s) if late else ""
        if late:
            return [], [], _short(job, segment_s)
        if asked_to_end():
            return [], [], ""
        waited = True
        await asyncio.sleep(_POLL_S)
    if waited:
        log.info("export %s device %s: waited for the recording of its end",
                 job.export_id, device_id)
    return [], [], ""


def _short(job: Job, segment_s: float) -> str:
    """The trailing gap's reason when the recording did not reach the end in time; logged."""
    log.warning("export %s device %s: the recording did not reach %s within %.0f s; "
                "the rest of the range is a trailing gap", job.export_id, job.device_id,
                format_timestamp(job.end_us), segment_s + SETTLE_S)
    return f"the recording had not reached the end after {segment_s + SETTLE_S:.0f} s"


def open_partials(directory: Path, device_id: int, end_us: int,
                  any_reach: bool) -> tuple[list[Segment], list[int]]:
    """The recorder's open segments starting before ``end_us``, opened (blocking), if the
    newest reaches ``end_us`` on disk (or, ``any_reach``, holds anything); else none.

    Each is read by its descriptor, ``/proc/<pid>/fd/<n>``, so the rename that closes it
    cannot pull it away from the cut (the recording it holds is the same inode). Where
    ``/proc`` is missing the job waits for the closed segment instead.
    """
    partials = [(p, s) for p, s in recorder_partials(directory) if s < end_us]
    if not partials or not _PROC:
        return [], []
    fds: list[int] = []
    try:
        for path, _ in partials:
            fds.append(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC))
    except OSError:  # closed and renamed meanwhile: the index has it next time
        release(fds)
        return [], []
    paths = [f"/proc/{os.getpid()}/fd/{fd}" for fd in fds]
    reach_us = recorded_until_us(SourceSegment(paths[-1], partials[-1][1], end_us))
    if reach_us is None or (reach_us < end_us and not any_reach):
        release(fds)
        return [], []
    ends = [s for _, s in partials[1:]] + [max(reach_us, partials[-1][1] + 1)]
    return [Segment(device_id, start_us, seg_end_us, path, 0)
            for (_, start_us), seg_end_us, path in zip(partials, ends, paths, strict=True)], fds
