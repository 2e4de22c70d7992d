"""Keep the index current while other programs write segments (docs/archive.rst ``rescan_s``).

Every ``rescan_s / 2`` the devices with files still settling are rescanned, so a segment is in
the index at most ``rescan_s`` after its last write; a change event from the watcher
(:mod:`watch`) rescans that device at once, which indexes a segment as soon as its successor
appears. Every device is rescanned as a backstop: each tick without a watcher; every minute
with one, and then without a ``stat`` per known file (the events report changed files), which
makes it a ``scandir`` per folder (see bench/index_scale.py for the cost at 1M segments).
Full passes are spaced to take at most a tenth of the time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from pathlib import Path

from sense_plugin.archive.scan import ScanReport
from sense_plugin.archive.watch import ArchiveWatcher
from sense_plugin.configmodel import DeviceConfig

log = logging.getLogger(__name__)

#: A device folder with change events is rescanned at most this often (seconds).
MIN_RESCAN_GAP_S = 0.2
#: With change events flowing, the full backstop rescan runs this often at most (seconds).
FULL_RESCAN_WITH_WATCH_S = 60.0
#: Full rescans are spaced so that they take at most 1/this of the time (a huge archive on a
#: share without events: new files then take longer than ``rescan_s`` to appear).
FULL_RESCAN_DUTY = 10

#: ``rescan(only, settle_s, stat_known)``: ``only`` maps devices to the paths to look at
#: (None: the whole device; ``only`` None: every device); ``stat_known`` False skips the
#: ``stat`` of files already indexed. None back when the archive is not ready yet.
RescanPass = Callable[[Mapping[int, Collection[Path] | None] | None, float, bool],
                      Awaitable[ScanReport | None]]


class Rescanner:
    """The rescan loop of an :class:`~sense_plugin.archive.service.Archive`."""

    def __init__(self, devices: Iterable[DeviceConfig], rescan: RescanPass,
                 tick_s: float) -> None:
        self._roots = {d.archive_dir: d.device_id for d in devices if d.enabled}
        self._rescan = rescan
        self.tick_s = tick_s
        self._wake = asyncio.Event()
        #: Changed paths per device, from events; and files still settling, per device.
        self._dirty: dict[int, set[Path]] = {}
        self._settling: dict[int, set[Path]] = {}
        self._watcher: ArchiveWatcher | None = None
        self._full_pass_s = 0.0

    def stop(self) -> None:
        """Stop the watcher thread (the loop itself is a task: cancel it)."""
        if self._watcher is not None:
            self._watcher.stop()

    def _by_device(self, paths: Iterable[Path]) -> dict[int, set[Path]]:
        grouped: dict[int, set[Path]] = {}
        for path in paths:
            for root, device in self._roots.items():
                if path.is_relative_to(root):
                    grouped.setdefault(device, set()).add(path)
        return grouped

    def _start_watcher(self) -> None:
        loop = asyncio.get_running_loop()

        def changed(paths: set[Path]) -> None:  # watcher thread
            loop.call_soon_threadsafe(self._mark_dirty, self._by_device(paths))

        self._watcher = ArchiveWatcher(self._roots, changed)
        if self._watcher.start():
            log.info("watching %d archive folders for new segments", len(self._watcher.watching))

    def _mark_dirty(self, grouped: dict[int, set[Path]], wake: bool = True) -> None:
        for device, paths in grouped.items():
            self._dirty.setdefault(device, set()).update(paths)
        if grouped and wake:
            self._wake.set()

    def _next_pass(self, last_full: float) -> dict[int, Collection[Path] | None] | None:
        """What to look at now: None for everything (the backstop), else device → paths."""
        watching = self._watcher is not None and self._watcher.running
        full_s = max(self.tick_s, FULL_RESCAN_WITH_WATCH_S if watching else 0.0,
                     FULL_RESCAN_DUTY * self._full_pass_s)
        if time.monotonic() - last_full >= full_s - 0.01:
            return None
        only: dict[int, Collection[Path] | None] = {}
        for source in (self._settling, self._dirty):
            for device, paths in source.items():
                only[device] = {*(only.get(device) or ()), *paths}
        return only

    async def run(self) -> None:
        """Rescan changed (watched) or settling files promptly, every device as a backstop."""
        self._start_watcher()
        last_full = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.tick_s):
                    await self._wake.wait()
            self._wake.clear()
            only = self._next_pass(last_full)
            if only is not None and not only:
                continue
            taken, self._dirty = self._dirty, {}  # events during the pass: next pass
            watching = self._watcher is not None and self._watcher.running
            began = time.monotonic()
            try:  # while events report changed files, a backstop need not stat known ones
                report = await self._rescan(only, self.tick_s, not watching)
            except Exception:  # a periodic job must survive its own bugs
                log.exception("archive rescan failed")
                report = None
            if report is None:  # failed or not ready yet: keep what was dirty for the next tick
                self._mark_dirty(taken, wake=False)
                continue
            if only is None:
                self._full_pass_s = time.monotonic() - began
                last_full = time.monotonic()
            self._settling = self._by_device(report.settling)
            if report.changed:
                log.info("archive reconciled while running: %s", report)
            await asyncio.sleep(min(MIN_RESCAN_GAP_S, self.tick_s))
