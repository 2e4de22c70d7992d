"""The rescan loop ends when the archive closes, even while change events keep arriving.

A recorder writes segments all the time, so the watcher's wake-up and the shutdown's cancel
can land in one turn of the event loop. ``asyncio.wait_for`` on Python 3.11 then returns the
wake-up and drops the cancel: the loop ran on, and the server's shutdown waited for it forever
(a CI teardown that timed out after 120 s).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from pathlib import Path

import pytest

from sense_plugin.archive.rescan import Rescanner
from sense_plugin.archive.scan import ScanReport


async def not_ready(only: Mapping[int, Collection[Path] | None] | None, settle_s: float,
                    stat_known: bool) -> ScanReport | None:
    return None  # as while the index is not open: the paths stay dirty, the loop waits again


@pytest.mark.parametrize("turns_before", [0, 1, 3])
async def test_a_wake_arriving_with_the_cancel_does_not_keep_the_loop_running(
        tmp_path: Path, turns_before: int) -> None:
    rescanner = Rescanner([], not_ready, tick_s=5.0)
    task = asyncio.create_task(rescanner.run())
    for _ in range(turns_before + 1):
        await asyncio.sleep(0)
    # what the watcher thread schedules for a new segment, then the shutdown's cancel
    rescanner._mark_dirty({1: {tmp_path / "segment.mkv"}})
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2.0)
    assert task in done, "the rescan loop survived its cancellation"
    assert task.cancelled()
