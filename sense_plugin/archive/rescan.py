"""Keep the index current while other programs write segments (SPEC §12 ``rescan_s``).

Every ``rescan_s / 2`` the devices with files still settling are rescanned, so a segment is in
the index at most ``rescan_s`` after its last write; a change event from the watcher
(:mod:`watch`) rescans that device at once, which indexes a segment as soon as its successor
appears. Every device is rescanned as a backstop: each tick without a watcher, every minute
with one (a full rescan of a large archive costs seconds: see bench/index_scale.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from sense_plugin.archive.scan import ScanReport
from sense_plugin.archive.watch import ArchiveWatcher
from sense_plugin.configmodel import DeviceConfig

log = logging.getLogger(__name__)

#: A device folder with change events is rescanned at most this often (seconds).
MIN_RESCAN_GAP_S = 0.2
#: With change events flowing, the full backstop rescan runs this often at most (seconds).
FULL_RESCAN_WITH_WATCH_S = 60.0

#: ``rescan(only devices or None for all, settle_s)`` → report and devices still settling.
RescanPass = Callable[[set[int] | None, float], Awaitable[tuple[ScanReport, set[int]] | None]]


class Rescanner:
    """The rescan loop of an :class:`~sense_plugin.archive.service.Archive`."""

    def __init__(self, devices: Iterable[DeviceConfig], rescan: RescanPass,
                 tick_s: float) -> None:
        self._roots = {d.archive_dir: d.device_id for d in devices if d.enabled}
        self._rescan = rescan
        self.tick_s = tick_s
        self._wake = asyncio.Event()
        self._dirty: set[int] = set()
        self._watcher: ArchiveWatcher | None = None

    def stop(self) -> None:
        """Stop the watcher thread (the loop itself is a task: cancel it)."""
        if self._watcher is not None:
            self._watcher.stop()

    def _start_watcher(self) -> None:
        loop = asyncio.get_running_loop()

        def changed(paths: set[Path]) -> None:  # watcher thread
            devices = {device for root, device in self._roots.items()
                       if any(path.is_relative_to(root) for path in paths)}
            loop.call_soon_threadsafe(self._mark_dirty, devices)

        self._watcher = ArchiveWatcher(self._roots, changed)
        if self._watcher.start():
            log.info("watching %d archive folders for new segments", len(self._watcher.watching))

    def _mark_dirty(self, devices: set[int]) -> None:
        self._dirty |= devices
        self._wake.set()

    async def run(self) -> None:
        """Rescan changed (watched) or settling devices promptly, every device as a backstop."""
        self._start_watcher()
        settling: set[int] = set()
        last_full = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.tick_s)
            self._wake.clear()
            watching = self._watcher is not None and self._watcher.running
            full_s = max(self.tick_s, FULL_RESCAN_WITH_WATCH_S) if watching else self.tick_s
            only: set[int] | None = self._dirty | settling
            if time.monotonic() - last_full >= full_s - 0.01:
                only, last_full = None, time.monotonic()
            if only is not None and not only:
                continue
            taken, self._dirty = self._dirty, set()  # events during the pass: next pass
            try:
                outcome = await self._rescan(only, self.tick_s)
            except Exception:  # a periodic job must survive its own bugs
                log.exception("archive rescan failed")
                outcome = None
            if outcome is None:  # failed or not ready yet: keep what was dirty for later
                self._dirty |= taken
                continue
            report, settling = outcome
            if report.changed:
                log.info("archive reconciled while running: %s", report)
            await asyncio.sleep(min(MIN_RESCAN_GAP_S, self.tick_s))
