"""The recorder's open segment as a snapshot source: ``mode=live`` + snapshot = the newest frame.

A segment being recorded is a hidden partial file (``.<final name>.rec.part``) in the device
directory, written as fragmented MP4 or Matroska with ``flush_packets``: readable up to its
last complete fragment. Fragmented MP4 cuts a fragment at every keyframe, so the newest frame
on disk is at most one GOP (plus the frame being written) older than now; Matroska writes
its clusters likewise. The live snapshot reads that newest frame; where the device has no
open segment (not recorded by this server, or between reconnections) it falls back to the
newest frame of the newest complete segment, as before.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from sense_plugin.archive.service import Archive
from sense_plugin.archive.writer import final_name_of_partial
from sense_plugin.media.cutspec import SourceSegment
from sense_plugin.naming import parse_segment_filename
from sense_plugin.timestamps import now_us

#: The open segment's span reaches at least this far past now (frames being flushed).
AHEAD_US = 1_000_000


async def open_segment(archive: Archive, device_id: int) -> SourceSegment | None:
    """The partial file the device's recorder writes now, spanning to past now; or None."""
    recorder = archive.recorders().get(device_id)
    if recorder is None or recorder.open_span is None:
        return None
    found = await asyncio.get_running_loop().run_in_executor(None, newest_partial,
                                                             recorder.directory)
    if found is None:
        return None
    path, start_us = found
    end_us = max(recorder.open_span[1], now_us()) + AHEAD_US
    return SourceSegment(str(path), start_us, end_us)


def newest_partial(directory: Path) -> tuple[Path, int] | None:
    """The recorder partial with the latest start in ``directory`` (blocking: a listing)."""
    found = recorder_partials(directory)
    return found[-1] if found else None


def recorder_partials(directory: Path) -> list[tuple[Path, int]]:
    """The recorder partials in ``directory`` with their starts, oldest first (blocking).

    There are two while a new segment has begun and late audio may still reach the one
    before it; an export whose end is being recorded reads them (export/planning.py).
    """
    found: list[tuple[Path, int]] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return found
    for entry in entries:
        if not entry.name.startswith("."):
            continue
        final = final_name_of_partial(entry.name)
        start_us = parse_segment_filename(final) if final is not None else None
        if start_us is not None:
            found.append((Path(entry.path), start_us))
    return sorted(found, key=lambda item: item[1])
