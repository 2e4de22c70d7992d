"""Where a device job reads from: the archive segments of its range or its snapshot instant."""

from __future__ import annotations

import asyncio
import logging

from sense_plugin.archive.index import Segment
from sense_plugin.archive.service import Archive
from sense_plugin.demo_defaults import LIVE_SEGMENT_S
from sense_plugin.errors import NoRecordError
from sense_plugin.export.model import Job
from sense_plugin.export.nearest import nothing_at
from sense_plugin.export.newest import open_segment
from sense_plugin.media.snapshot import segment_at
from sense_plugin.timestamps import GAP_TOLERANCE_US, format_timestamp, now_us

log = logging.getLogger(__name__)

#: A live snapshot shows the newest frame of a segment that ended at most this long ago.
NEWEST_WINDOW_US = 10 * 60 * 1_000_000
#: Beyond one segment length: the recorder closes the segment, the index takes it in.
SETTLE_S = 3.0
_POLL_S = 0.25


async def stream_source(archive: Archive, job: Job) -> tuple[list[Segment], int, int]:
    """The segments of a stream job, the recorded µs in its range and a size estimate.

    A range whose end the device is still recording waits for it (:func:`wait_recorded`).
    """
    if job.end_us <= now_us():
        await wait_recorded(archive, job)
    # audio of the range can sit in the next segment, before its first frame (cutter)
    segments = await archive.segments(job.device_id, job.start_us, job.end_us + 1_000_000)
    recorded_us = 0
    estimate = 0
    for seg in segments:
        overlap = min(seg.end_us, job.end_us) - max(seg.start_us, job.start_us)
        if overlap > 0:
            recorded_us += overlap
            estimate += seg.size_bytes * overlap // max(seg.end_us - seg.start_us, 1)
    if job.end_us > now_us():  # a live range being recorded: cut as it grows (media/follow)
        return segments, job.end_us - job.start_us, estimate
    if recorded_us <= 0:
        raise NoRecordError(
            f"nothing is recorded for device {job.device_id} between "
            f"{format_timestamp(job.start_us)} and {format_timestamp(job.end_us)}"
            + await archive.skipped_hint(job.device_id))
    return segments, recorded_us, estimate

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


async def wait_recorded(archive: Archive, job: Job) -> None:
    """Until the archive holds the device's recording up to the job's end, while its recorder
    still writes the segment holding that end; at most one segment length and
    :data:`SETTLE_S` (docs/evidence.rst, "The end"). A recording that stops short leaves
    the rest of the range a trailing gap in the file, and a line in the log."""
    device_id, end_us = job.device_id, job.end_us
    segment_s = (LIVE_SEGMENT_S if device_id in archive.live_demo_ids
                 else archive.config.archive.segment_seconds)
    deadline_s = asyncio.get_running_loop().time() + segment_s + SETTLE_S
    waited = False
    while (recorder := archive.recorders().get(device_id)) is not None \
            and recorder.open_span is not None and recorder.open_span[0] < end_us:
        found = await archive.segments(device_id, end_us - 1, end_us + 1)
        if any(s.end_us >= end_us for s in found):
            return
        if asyncio.get_running_loop().time() >= deadline_s:
            log.warning("export %s device %s: the recording did not reach %s within %.0f s; "
                        "the rest of the range is a trailing gap", job.export_id, device_id,
                        format_timestamp(end_us), segment_s + SETTLE_S)
            return
        waited = True
        await asyncio.sleep(_POLL_S)
    if waited:
        log.info("export %s device %s: waited for the recording of its end",
                 job.export_id, device_id)
