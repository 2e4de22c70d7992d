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
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sense_plugin.archive.demo_archive import (
    DemoSpec,
    build_demo_archive,
    demo_devices,
    generate_into,
    index_path,
)
from sense_plugin.archive.index import DEFAULT_JOIN_TOLERANCE_US, ArchiveIndex, Segment
from sense_plugin.archive.probe import probe_segment
from sense_plugin.archive.recorder import Recorder, with_open_range, with_open_span
from sense_plugin.archive.retention import PinRegistry, apply_retention
from sense_plugin.archive.scan import ScanReport, reconcile_device
from sense_plugin.config import Config, DeviceConfig
from sense_plugin.errors import GeneralError, MediaError, NoDeviceError, StorageError
from sense_plugin.timestamps import now_us

__all__ = ["Archive", "DemoSpec", "build_demo_archive"]

log = logging.getLogger(__name__)
T = TypeVar("T")

STATUS_DISABLED = "disabled"
STATUS_IDLE = "idle"
#: Files younger than this are left to their writer by the periodic reconcile.
SETTLE_S = 5.0


class Archive:
    """Async facade over the segment index, the demo generator, recorders and retention."""

    def __init__(self, config: Config, executor: concurrent.futures.Executor, *,
                 retention_interval_s: float = 60.0, reconcile_interval_s: float = 30.0,
                 demo_spec: DemoSpec | None = None) -> None:
        self.config = config
        self._executor = executor
        self._intervals_s = (retention_interval_s, reconcile_interval_s)
        self._demo_spec = demo_spec or DemoSpec(
            minutes=config.archive.demo_minutes, width=320, height=180, fps=10,
            bitrate_bps=150_000, segment_s=min(60.0, max(10.0, config.archive.segment_seconds)),
            gop_s=1.0)
        self.demo_ready = asyncio.Event()
        self.pins = PinRegistry()
        self._index: ArchiveIndex | None = None
        self._recorders: dict[int, Recorder] = {}
        self._threads: list[threading.Thread] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stop_demo = threading.Event()

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Open (rebuild or reconcile) the index, then start demo generation, recorders and
        the periodic retention and reconcile tasks."""
        db_path = index_path(self.config)
        try:
            self._index = await self._run(open_index, db_path)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open the archive index {db_path}: {exc}") from exc
        report = await self._run(self._reconcile_all, True)
        log.info("archive index %s: %s", self._index.db_path, report)
        if await self._run(self._wants_demo):
            self._tasks.append(asyncio.create_task(self._generate_demo(), name="archive-demo"))
        else:
            self.demo_ready.set()
        self._start_recorders()
        retention_s, reconcile_s = self._intervals_s
        self._tasks.append(asyncio.create_task(
            self._every(retention_s, self._retention_pass), name="archive-retention"))
        self._tasks.append(asyncio.create_task(
            self._every(reconcile_s, self._light_reconcile), name="archive-reconcile"))

    async def close(self) -> None:
        """Stop recorders and tasks promptly, wait for them, close the index."""
        self._stop_demo.set()
        for recorder in self._recorders.values():
            recorder.stop()
        for task in self._tasks:
            if task.get_name() != "archive-demo":
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        while any(thread.is_alive() for thread in self._threads):
            await asyncio.sleep(0.02)
        self._threads.clear()
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

    def _reconcile_all(self, recover: bool, settle_s: float = 0.0) -> ScanReport:
        assert self._index is not None
        report = ScanReport()
        for device in self.config.devices:
            try:
                report += reconcile_device(self._index, device.device_id, device.archive_dir,
                                           recover=recover, settle_s=settle_s)
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

    def _start_recorders(self) -> None:
        for device in self.config.devices:
            if device.enabled and device.source:
                recorder = Recorder(device.source, device.archive_dir,
                                    segment_s=self.config.archive.segment_seconds,
                                    on_segment=functools.partial(self._on_segment, device),
                                    name=device.name)
                thread = threading.Thread(target=recorder.run, daemon=True,
                                          name=f"recorder-{device.device_id}")
                self._recorders[device.device_id] = recorder
                self._threads.append(thread)
                thread.start()

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
            try:
                apply_retention(index, self.pins, device.device_id,
                                max_age_days=limits.max_age_days,
                                max_bytes=limits.max_bytes_per_device, now_us=now_us())
            except (OSError, sqlite3.Error) as exc:
                log.error("retention failed for device %s: %s", device.device_id, exc)

    def _light_reconcile(self) -> None:
        if self._index is None or not self.demo_ready.is_set():
            return
        report = self._reconcile_all(False, SETTLE_S)
        if report.changed:
            log.info("archive reconciled while running: %s", report)


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
