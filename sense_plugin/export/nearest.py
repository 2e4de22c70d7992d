"""The -9 description for an instant with nothing recorded: the nearest recorded times."""

from __future__ import annotations

from sense_plugin.archive.service import Archive
from sense_plugin.timestamps import format_timestamp

#: How far around a missing instant to look for the nearest recorded times.
NEAREST_WINDOW_US = 7 * 86_400 * 1_000_000


async def nothing_at(archive: Archive, device_id: int, instant_us: int) -> str:
    """A -9 description naming the nearest recorded times before and after the instant."""
    intervals = await archive.intervals(device_id, instant_us - NEAREST_WINDOW_US,
                                        instant_us + NEAREST_WINDOW_US)
    before = [end for _, end in intervals if end <= instant_us]
    after = [start for start, _ in intervals if start > instant_us]
    nearest = []
    if before:
        nearest.append(f"recording ends at {format_timestamp(max(before))} before it")
    if after:
        nearest.append(f"resumes at {format_timestamp(min(after))} after it")
    where = "; nearest: " + ", ".join(nearest) if nearest else " (nor within 7 days of it)"
    return (f"nothing is recorded for device {device_id} at {format_timestamp(instant_us)}"
            f"{where}")
