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
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TypeVar

from sense_plugin.archive.backfill import Backfill
from sense_plugin.archive.demo_archive import (
    DemoSpec,
    build_demo_archive,
    demo_devices,
    generate_into,
    live_demo_spec,
)
from sense_plugin.archive.demo_defaults import LIVE_SEGMENT_S as LIVE_DEMO_SEGMENT_S
from sense_plugin.archive.index import (
    DEFAULT_JOIN_TOLERANCE_US,
    ArchiveIndex,
    Segment,
    index_path,
)
from sense_plugin.archive.livedemo import LiveDemo
from sense_plugin.archive.naming import compiled
from sense_plugin.archive.probe import probe_segment
from sense_plugin.archive.recorder import Recorder, with_open_range, with_open_span
from sense_plugin.archive.rescan import Rescanner
from sense_plugin.archive.retention import PinRegistry, apply_retention
from sense_plugin.archive.scan import ScanReport, reconcile_device, recover_partials
from sense_plugin.archive.summary import describe_devices, describe_scan
from sense_plugin.archive.synthetic import LiveSpec
from sense_plugin.config import Config, DeviceConfig
from sense_plugin.errors import GeneralError, MediaError, NoDeviceError, StorageError
from sense_plugin.timestamps import now_us

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
        self._recorders: dict[int, Recorder] = {}
        self._threads: list[threading.Thread] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stop_demo = threading.Event()
        self._rescanner: Rescanner | None = None
        self._startup: asyncio.Future[ScanReport] | None = None
        self._stop_scan = threading.Event()
        self._live: LiveDemo | None = None
        self._recorded_bytes: dict[int, int] = {}

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Open (rebuild or reconcile) the index, then start demo generation, recorders and
        the periodic retention and reconcile tasks."""
        db_path = index_path(self.config)
        try:
            self._index = await self._run(open_index, db_path)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open the archive index {db_path}: {exc}") from exc
        recovered = await self._run(self._recover_partials)
        self._start_recorders()
        # A large archive takes a while to reconcile (a stat per file, a probe per new one):
        # the server answers from the index as it is meanwhile.
        self._startup = asyncio.ensure_future(self._run(self._reconcile_all, False))
        try:
            report = await asyncio.wait_for(asyncio.shield(self._startup), STARTUP_WAIT_S)
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
        elif await self._run(self._wants_demo):
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
        for recorder in self._recorders.values():
            recorder.stop()
        for task in self._tasks:
            if task.get_name() != "archive-demo":
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._startup is not None:  # its thread stops at the next file (stop flag)
            await asyncio.gather(self._startup, return_exceptions=True)
        while any(thread.is_alive() for thread in self._threads):
            await asyncio.sleep(0.02)
        self._threads.clear()
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

    def _recover_partials(self) -> ScanReport:
        """Before any recorder runs: recover crashed recorders' partial segments."""
        report = ScanReport()
        for device in self.config.devices:
            try:
                report += recover_partials(device.archive_dir)
            except OSError as exc:
                log.error("cannot recover partial segments of device %s: %s",
                          device.device_id, exc)
        return report

    def _reconcile_all(self, recover: bool, settle_s: float = 0.0,
                       only: Mapping[int, Collection[Path] | None] | None = None,
                       stat_known: bool = True) -> ScanReport:
        """Reconcile every device, or ``only`` these (each: just these paths, or None: all)."""
        assert self._index is not None
        report = ScanReport()
        for device in self.config.devices:
            if only is not None and device.device_id not in only:
                continue
            if self._stop_scan.is_set():
                break
            try:
                report += reconcile_device(
                    self._index, device.device_id, device.archive_dir, recover=recover,
                    settle_s=settle_s,
                    pattern=compiled(device.archive_pattern, device.archive_timezone),
                    paths=None if only is None else only[device.device_id],
                    stat_known=stat_known, stop=self._stop_scan)
            except (OSError, sqlite3.Error) as exc:
                log.error("cannot reconcile the archive of device %s: %s", device.device_id, exc)
        return report

    def _wants_demo(self) -> bool:
        assert self._index is not None
        if not self.config.archive.demo or not demo_devices(self.config):
            return False
        return all(self._index.count(d.device_id) == 0 for d in self.config.devices)

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
            self._start_recorder(device, url, segment_s)
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

    def _start_recorders(self) -> None:
        for device in self.config.devices:
            if device.enabled and device.source:
                self._start_recorder(device, device.source, self.config.archive.segment_seconds)

    def _start_recorder(self, device: DeviceConfig, source: str, segment_s: float) -> None:
        recorder = Recorder(source, device.archive_dir, segment_s=segment_s,
                            on_segment=functools.partial(self._on_segment, device),
                            name=device.name)
        thread = threading.Thread(target=recorder.run, daemon=True,
                                  name=f"recorder-{device.device_id}")
        self._recorders[device.device_id] = recorder
        self._threads.append(thread)
        thread.start()

    def recorders(self) -> dict[int, Recorder]:
        """The running recorders by device id (for metrics)."""
        return dict(self._recorders)

    def recorded_bytes(self) -> dict[int, int]:
        """Bytes of the segments each recorder has closed since the start (for metrics)."""
        return dict(self._recorded_bytes)

    def _on_segment(self, device: DeviceConfig, path: Path) -> None:
        """Recorder thread: index a segment it has just closed."""
        index = self._index
        if index is None:
            return
        try:
            info = probe_segment(path)
            mtime_ns = path.stat().st_mtime_ns
            index.add(Segment(device.device_id, info.start_us, info.end_us, path,
                              info.size_bytes), mtime_ns=mtime_ns)
            recorded = self._recorded_bytes.get(device.device_id, 0) + info.size_bytes
            self._recorded_bytes[device.device_id] = recorded
        except (MediaError, OSError, sqlite3.Error) as exc:
            log.error("new segment %s of %s not indexed: %s", path.name, device.name, exc)

    async def _every(self, interval_s: float, job: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self._run(job)
            except Exception:  # a periodic job must survive its own bugs
                log.exception("archive background job failed")

    def _retention_pass(self) -> None:
        index = self._index
        if index is None:
            return
        limits = self.config.archive
        for device in self.config.devices:
            if device.archive_foreign and not limits.manage_foreign:
                continue  # an imported archive is read-only to us (SPEC §12)
            max_age_days = limits.max_age_days
            if device.device_id in self.live_demo_ids:
                max_age_days = min(max_age_days, limits.demo_keep_hours / 24)
            try:
                apply_retention(index, self.pins, device.device_id,
                                max_age_days=max_age_days,
                                max_bytes=limits.max_bytes_per_device, now_us=now_us())
            except (OSError, sqlite3.Error) as exc:
                log.error("retention failed for device %s: %s", device.device_id, exc)

    async def _rescan(self, only: Mapping[int, Collection[Path] | None] | None,
                      settle_s: float, stat_known: bool) -> ScanReport | None:
        """One rescan pass for the rescanner (None while the index or demo is not ready)."""
        if self._index is None or not self.demo_ready.is_set():
            return None
        return await self._run(self._reconcile_all, False, settle_s, only, stat_known)

    async def skipped_hint(self, device_id: int) -> str:
        """For a -9 description: how many of the device's files were skipped and where to
        look, or ``""`` when none were."""
        total, _files = await self._query(lambda index: index.skipped(device_id, 0))
        if not total:
            return ""
        device = self.config.device(device_id)
        pattern = device.archive_pattern if device is not None else ""
        return (f"; {total} file(s) in the device's archive were skipped (names not matching "
                f"archive_pattern '{pattern}', or unreadable): see the server log or run "
                f"'sense-plugin archive-check --device {device_id}'")


def open_index(db_path: Path) -> ArchiveIndex:
    """Open the index; a corrupt database file is moved aside and rebuilt from the files."""
    try:
        return ArchiveIndex(db_path)
    except sqlite3.DatabaseError as exc:
        aside = db_path.with_name(f"{db_path.name}.corrupt-{int(time.time())}")
        log.error("archive index %s is unusable (%s); moved to %s and rebuilding",
                  db_path, exc, aside.name)
        for suffix in ("", "-wal", "-shm"):
            source = db_path.with_name(db_path.name + suffix)
            if source.exists():
                source.replace(aside.with_name(aside.name + suffix))
        return ArchiveIndex(db_path)
