"""Where a device job reads from: the archive segments of its range or its snapshot instant."""

from __future__ import annotations

from sense_plugin.archive.index import Segment
from sense_plugin.archive.service import Archive
from sense_plugin.errors import NoRecordError
from sense_plugin.export.model import Job
from sense_plugin.export.nearest import nothing_at
from sense_plugin.timestamps import format_timestamp, now_us

#: A live snapshot shows the newest frame of a segment that ended at most this long ago.
NEWEST_WINDOW_US = 10 * 60 * 1_000_000


async def stream_source(archive: Archive, job: Job) -> tuple[list[Segment], int, int]:
    """The segments of a stream job, the recorded µs in its range and a size estimate."""
    # audio of the range can sit in the next segment, before its first frame (cutter)
    segments = await archive.segments(job.device_id, job.start_us, job.end_us + 1_000_000)
    recorded_us = 0
    estimate = 0
    for seg in segments:
        overlap = min(seg.end_us, job.end_us) - max(seg.start_us, job.start_us)
        if overlap > 0:
            recorded_us += overlap
            estimate += seg.size_bytes * overlap // max(seg.end_us - seg.start_us, 1)
    if recorded_us <= 0:
        raise NoRecordError(
            f"nothing is recorded for device {job.device_id} between "
            f"{format_timestamp(job.start_us)} and {format_timestamp(job.end_us)}"
            + await archive.skipped_hint(job.device_id))
    return segments, recorded_us, estimate

async def snapshot_source(archive: Archive, job: Job, newest: bool) -> tuple[list[Segment], int]:
    """The segment showing a snapshot's instant, and the instant (live: the newest frame
    of the newest complete segment); -9 naming the nearest recorded times if none."""
    instant = now_us() if newest else job.start_us
    if newest:
        recent = await archive.segments(job.device_id, instant - NEWEST_WINDOW_US, instant + 1)
        if not recent:
            raise NoRecordError(f"device {job.device_id} recorded nothing in the last "
                                f"{NEWEST_WINDOW_US // 60_000_000} minutes")
        latest = max(recent, key=lambda s: s.end_us)
        return [latest], latest.end_us - 1
    covering = [s for s in await archive.segments(job.device_id, instant, instant + 1)
                if s.start_us <= instant < s.end_us]
    if not covering:
        raise NoRecordError(await nothing_at(archive, job.device_id, instant))
    return covering, instant
