"""The archive as the app sees it: index, demo generation, recorders, retention, one lifecycle.

Every index, PyAV and disk call runs in the app's executor (recorders in their own threads);
database and disk failures are logged here and surface as :class:`GeneralError`, never as a
crashed server.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import sqlite3
import threading
from collections.abc import Callable
from typing import TypeVar

from sense_plugin.archive.backfill import Backfill
from sense_plugin.archive.demo_archive import (
    DemoSpec,
    build_demo_archive,
    demo_devices,
    generate_into,
    live_demo_spec,
    wants_demo,
)
from sense_plugin.archive.index import (
    DEFAULT_JOIN_TOLERANCE_US,
    ArchiveIndex,
    Segment,
    index_path,
)
from sense_plugin.archive.livedemo import LiveDemo
from sense_plugin.archive.recorder import Recorder, with_open_range, with_open_span
from sense_plugin.archive.recorders import Recorders
from sense_plugin.archive.rescan import Rescanner
from sense_plugin.archive.retention import PinRegistry
from sense_plugin.archive.scan import ScanReport
from sense_plugin.archive.summary import describe_devices, describe_scan, describe_skipped
from sense_plugin.archive.synthetic import LiveSpec
from sense_plugin.archive.upkeep import (
    Only,
    open_index,
    reconcile_all,
    recover_all_partials,
    retention_pass,
)
from sense_plugin.config import Config
from sense_plugin.demo_defaults import LIVE_SEGMENT_S as LIVE_DEMO_SEGMENT_S
from sense_plugin.errors import GeneralError, MediaError, NoDeviceError, StorageError

#: ``LIVE_DEMO_SEGMENT_S`` (defined in ``demo_defaults``) is read from here by export/live.py.
__all__ = ["LIVE_DEMO_SEGMENT_S", "Archive", "DemoSpec", "build_demo_archive"]

log = logging.getLogger(__name__)
T = TypeVar("T")

STATUS_DISABLED = "disabled"
STATUS_IDLE = "idle"
#: Start waits this long for the first reconcile, then lets it finish in the background.
STARTUP_WAIT_S = 5.0


class Archive:
    """Async facade over the segment index, the demo generator, recorders and retention."""

    def __init__(self, config: Config, executor: concurrent.futures.Executor, *,
                 retention_interval_s: float = 60.0, reconcile_interval_s: float | None = None,
                 demo_spec: DemoSpec | None = None) -> None:
        self.config = config
        self._executor = executor
        #: Rescans every half ``rescan_s``: a file quiet that long is complete, so it is
        #: indexed at most ``rescan_s`` after its last write (or at once, on the next file).
        self._intervals_s = (retention_interval_s,
                             reconcile_interval_s or config.archive.rescan_s / 2)
        self._demo_spec = demo_spec or live_demo_spec(config.archive.demo_minutes)
        self.demo_ready = asyncio.Event()
        self.pins = PinRegistry()
        self._index: ArchiveIndex | None = None
        self._recorders = Recorders(lambda: self._index)
        self._tasks: list[asyncio.Task[None]] = []
        self._stop_demo = threading.Event()
        self._rescanner: Rescanner | None = None
        self._startup: asyncio.Future[ScanReport] | None = None
        self._stop_scan = threading.Event()
        self._live: LiveDemo | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Open (rebuild or reconcile) the index, then start demo generation, recorders and
        the periodic retention and reconcile tasks."""
        db_path = index_path(self.config)
        try:
            self._index = await self._run(open_index, db_path)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open the archive index {db_path}: {exc}") from exc
        recovered = await self._run(recover_all_partials, self.config.devices)
        for device in self.config.devices:
            if device.enabled and device.source:
                self._recorders.start(device, device.source, self.config.archive.segment_seconds)
        # A large archive takes a while to reconcile (a stat per file, a probe per new one):
        # the server answers from the index as it is meanwhile.
        self._startup = asyncio.ensure_future(self._run(self._reconcile_all, False))
        try:
            async with asyncio.timeout(STARTUP_WAIT_S):
                report = await asyncio.shield(self._startup)
        except TimeoutError:
            log.warning("the archive index is still being brought up to date; the server "
                        "answers meanwhile and new or changed files appear as they are indexed")
            self._tasks.append(asyncio.create_task(self._finish_start(recovered),
                                                   name="archive-startup"))
            return
        await self._started(recovered, report)

    async def _finish_start(self, recovered: ScanReport) -> None:
        assert self._startup is not None
        await self._started(recovered, await asyncio.shield(self._startup))

    async def _started(self, recovered: ScanReport, report: ScanReport) -> None:
        """After the first reconcile: the demo if wanted, retention and the rescan loop."""
        assert self._index is not None
        recovered += report
        log.info("archive index %s: %s", self._index.db_path, describe_scan(recovered))
        for line in await self._run(describe_devices, self._index, self.config.devices):
            log.info("archive: %s", line)
        if self._demo_spec.live is not None and self.config.archive.demo:
            await self._start_live_demo(self._demo_spec.live)
        elif await self._run(wants_demo, self._index, self.config):
            self._tasks.append(asyncio.create_task(self._generate_demo(), name="archive-demo"))
        else:
            self.demo_ready.set()
        retention_s, reconcile_s = self._intervals_s
        self._tasks.append(asyncio.create_task(
            self._every(retention_s, self._retention_pass), name="archive-retention"))
        self._rescanner = Rescanner(self.config.devices, self._rescan, reconcile_s)
        self._tasks.append(asyncio.create_task(self._rescanner.run(), name="archive-reconcile"))

    async def close(self) -> None:
        """Stop recorders and tasks promptly, wait for them, close the index."""
        self._stop_demo.set()
        self._stop_scan.set()
        if self._rescanner is not None:
            self._rescanner.stop()
        self._recorders.stop()
        for task in self._tasks:
            if task.get_name() != "archive-demo":
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._startup is not None:  # its thread stops at the next file (stop flag)
            await asyncio.gather(self._startup, return_exceptions=True)
        await self._recorders.wait_stopped()
        if self._live is not None:
            await self._run(self._live.stop)
        if self._index is not None:
            index, self._index = self._index, None
            await self._run(index.close)

    # -- queries --------------------------------------------------------------------------

    async def segments(self, device_id: int, start_us: int, end_us: int) -> list[Segment]:
        """Complete segments overlapping ``[start_us, end_us)`` in time order."""
        return await self._query(lambda index: index.segments(device_id, start_us, end_us))

    async def recorded_range(self, device_id: int) -> tuple[int, int] | None:
        """``(first recorded instant, end of the last recording)`` or None."""
        found = await self._query(lambda index: index.recorded_range(device_id))
        return with_open_range(found, self._open_span(device_id))

    async def intervals(self, device_id: int, start_us: int,
                        end_us: int) -> list[tuple[int, int]]:
        """Recorded intervals inside the range (the holes between them are gaps)."""
        found = await self._query(lambda index: index.intervals(device_id, start_us, end_us))
        return with_open_span(found, self._open_span(device_id), start_us, end_us,
                              DEFAULT_JOIN_TOLERANCE_US)

    def _open_span(self, device_id: int) -> tuple[int, int] | None:
        """What the device's recorder has written into the segment still open (not indexed)."""
        recorder = self._recorders.get(device_id)
        return recorder.open_span if recorder is not None else None

    def device_status(self, device_id: int) -> str:
        """``disabled``, ``idle`` (archive only), ``connecting``, ``recording`` or ``error: …``."""
        device = self.config.device(device_id)
        if device is None:
            raise NoDeviceError(f"deviceid {device_id} is not configured")
        if not device.enabled:
            return STATUS_DISABLED
        recorder = self._recorders.get(device_id)
        return recorder.status if recorder is not None else STATUS_IDLE

    def pin(self, device_id: int, start_us: int, end_us: int) -> int:
        """Protect the device's segments overlapping the range from retention; pin, then query."""
        return self.pins.pin(device_id, start_us, end_us)

    def unpin(self, token: int) -> None:
        """Release a pin."""
        self.pins.unpin(token)

    # -- internals ------------------------------------------------------------------------

    async def _run(self, func: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(func, *args))

    async def _query(self, func: Callable[[ArchiveIndex], T]) -> T:
        index = self._index
        if index is None:
            raise GeneralError("the archive is not open")
        try:
            return await self._run(func, index)
        except sqlite3.Error as exc:
            log.error("archive index query failed: %s", exc)
            raise GeneralError("the archive index is unavailable") from None

    def _reconcile_all(self, recover: bool, settle_s: float = 0.0, only: Only | None = None,
                       stat_known: bool = True) -> ScanReport:
        assert self._index is not None
        return reconcile_all(self._index, self.config.devices, self._stop_scan,
                             recover=recover, settle_s=settle_s, only=only,
                             stat_known=stat_known)

    async def _generate_demo(self) -> None:
        assert self._index is not None
        targets = demo_devices(self.config)
        log.info("generating the demo archive for %d devices", len(targets))
        try:
            await self._run(functools.partial(generate_into, stop=self._stop_demo),
                            self._index, targets, self._demo_spec)
        except (OSError, sqlite3.Error, MediaError, ValueError) as exc:
            log.error("demo archive generation failed: %s", exc)
        except concurrent.futures.process.BrokenProcessPool as exc:
            log.error("demo archive generation failed: a worker died (%s)", exc)
        finally:
            self.demo_ready.set()

    async def _start_live_demo(self, live: LiveSpec) -> None:
        """Record the demo devices from the synthetic source; back-fill on first start."""
        assert self._index is not None
        self._live = LiveDemo(self.config, self._demo_spec, live)
        feeds, plan = await self._run(self._live.start, self._index)
        segment_s = min(self.config.archive.segment_seconds, self._demo_spec.segment_s)
        for device, url in feeds:
            self._recorders.start(device, url, segment_s)
        if plan is None:
            self.demo_ready.set()
        else:
            self._tasks.append(asyncio.create_task(self._backfill(plan), name="archive-demo"))

    async def _backfill(self, plan: Backfill) -> None:
        assert self._index is not None and self._live is not None
        try:
            await self._run(self._live.backfill, self._index, plan, self._stop_demo)
        finally:
            self.demo_ready.set()

    @property
    def live_demo_ids(self) -> frozenset[int]:
        """The devices fed by the live demo's synthetic source."""
        return self._live.device_ids if self._live is not None else frozenset()

    def recorders(self) -> dict[int, Recorder]:
        """The running recorders by device id (for metrics)."""
        return self._recorders.by_device()

    def recorded_bytes(self) -> dict[int, int]:
        """Bytes of the segments each recorder has closed since the start (for metrics)."""
        return self._recorders.recorded_bytes()

    async def _every(self, interval_s: float, job: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self._run(job)
            except Exception:  # a periodic job must survive its own bugs
                log.exception("archive background job failed")

    def _retention_pass(self) -> None:
        index = self._index
        if index is not None:
            retention_pass(index, self.pins, self.config, self.live_demo_ids)

    async def _rescan(self, only: Only | None, settle_s: float,
                      stat_known: bool) -> ScanReport | None:
        """One rescan pass for the rescanner (None while the index or demo is not ready)."""
        if self._index is None or not self.demo_ready.is_set():
            return None
        return await self._run(self._reconcile_all, False, settle_s, only, stat_known)

    async def skipped_hint(self, device_id: int) -> str:
        """For a -9 description: how many of the device's files were skipped and where to
        look, or ``""`` when none were."""
        total, _files = await self._query(lambda index: index.skipped(device_id, 0))
        return describe_skipped(total, device_id, self.config.device(device_id))

