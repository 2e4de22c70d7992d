"""``sense-plugin archive-check``: per device, what the index serves and which files it skips.

It brings the index up to date first (the same reconcile the server runs, so a file is
probed only once whichever of them sees it first) and then reads the answer from the index;
running it while the server runs is safe (SQLite WAL, short transactions).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sense_plugin.archive.index import ArchiveIndex, index_path
from sense_plugin.archive.naming import compiled
from sense_plugin.archive.scan import reconcile_device
from sense_plugin.config import Config, DeviceConfig
from sense_plugin.errors import NoDeviceError
from sense_plugin.timestamps import format_timestamp

#: Files changed this recently count as still being written (unless a later one exists).
SETTLE_S = 2.0


@dataclass(frozen=True)
class DeviceCheck:
    """The archive of one device as the index sees it."""

    device: DeviceConfig
    indexed: int
    recorded: tuple[int, int] | None
    skipped_total: int
    skipped: list[tuple[Path, str]]
    settling: int

    def lines(self) -> Iterator[str]:
        """The report's lines for this device."""
        d = self.device
        yield (f"device {d.device_id} {d.name!r}: {d.archive_dir} pattern "
               f"'{d.archive_pattern}' zone {d.archive_timezone}"
               + (" (imported, read-only)" if d.archive_foreign else ""))
        span = ("nothing" if self.recorded is None else
                f"{format_timestamp(self.recorded[0])} .. {format_timestamp(self.recorded[1])}")
        yield f"  indexed {self.indexed} segments, {span}"
        if self.settling:
            yield f"  {self.settling} file(s) still being written (not checked yet)"
        yield f"  skipped {self.skipped_total} file(s)"
        for path, reason in self.skipped:
            yield f"  SKIPPED {path}: {reason}"


def check_archive(config: Config, device_id: int | None = None) -> list[DeviceCheck]:
    """Reconcile and report every device (or the one given; unknown: :class:`NoDeviceError`)."""
    devices = [d for d in config.devices if device_id is None or d.device_id == device_id]
    if not devices:
        raise NoDeviceError(f"deviceid {device_id} is not configured in {config.source}")
    index = ArchiveIndex(index_path(config))
    try:
        return [_check(index, device) for device in devices]
    finally:
        index.close()


def _check(index: ArchiveIndex, device: DeviceConfig) -> DeviceCheck:
    report = reconcile_device(index, device.device_id, device.archive_dir, settle_s=SETTLE_S,
                              pattern=compiled(device.archive_pattern, device.archive_timezone))
    total, skipped = index.skipped(device.device_id)
    return DeviceCheck(device, index.count(device.device_id),
                       index.recorded_range(device.device_id), total, skipped, report.pending)
