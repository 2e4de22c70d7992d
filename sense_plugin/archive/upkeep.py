"""The archive's blocking upkeep passes: open the index, recover partials, reconcile devices
with their folders, apply retention. Failures are logged per device; the pass goes on."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from sense_plugin.archive.index import ArchiveIndex
from sense_plugin.archive.retention import PinRegistry, apply_retention
from sense_plugin.archive.scan import ScanReport, reconcile_device, recover_partials
from sense_plugin.config import Config, DeviceConfig
from sense_plugin.naming import compiled
from sense_plugin.timestamps import now_us

log = logging.getLogger(__name__)

#: Which devices (and of each, which paths, or None: all) a reconcile pass looks at.
Only = Mapping[int, Collection[Path] | None]


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


def recover_all_partials(devices: Iterable[DeviceConfig]) -> ScanReport:
    """Before any recorder runs: recover crashed recorders' partial segments."""
    report = ScanReport()
    for device in devices:
        try:
            report += recover_partials(device.archive_dir)
        except OSError as exc:
            log.error("cannot recover partial segments of device %s: %s",
                      device.device_id, exc)
    return report


def reconcile_all(index: ArchiveIndex, devices: Iterable[DeviceConfig], stop: threading.Event,
                  *, recover: bool, settle_s: float = 0.0, only: Only | None = None,
                  stat_known: bool = True) -> ScanReport:
    """Reconcile every device, or ``only`` these (each: just these paths, or None: all)."""
    report = ScanReport()
    for device in devices:
        if only is not None and device.device_id not in only:
            continue
        if stop.is_set():
            break
        try:
            report += reconcile_device(
                index, device.device_id, device.archive_dir, recover=recover,
                settle_s=settle_s,
                pattern=compiled(device.archive_pattern, device.archive_timezone),
                paths=None if only is None else only[device.device_id],
                stat_known=stat_known, stop=stop)
        except (OSError, sqlite3.Error) as exc:
            log.error("cannot reconcile the archive of device %s: %s", device.device_id, exc)
    return report


def retention_pass(index: ArchiveIndex, pins: PinRegistry, config: Config,
                   live_demo_ids: Collection[int]) -> None:
    """Apply archive retention to every device we may delete from (docs/archive.rst)."""
    limits = config.archive
    for device in config.devices:
        if device.archive_foreign and not limits.manage_foreign:
            continue  # an imported archive is read-only to us (docs/archive.rst)
        max_age_days = limits.max_age_days
        if device.device_id in live_demo_ids:
            max_age_days = min(max_age_days, limits.demo_keep_hours / 24)
        try:
            apply_retention(index, pins, device.device_id, max_age_days=max_age_days,
                            max_bytes=limits.max_bytes_per_device, now_us=now_us())
        except (OSError, sqlite3.Error) as exc:
            log.error("retention failed for device %s: %s", device.device_id, exc)
