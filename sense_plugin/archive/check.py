"""``sense-plugin archive-check``: per device, what the index serves and which files it skips.

It brings the index up to date first (the same reconcile the server runs, so a file is
probed only once whichever of them sees it first) and then reads the answer from the index;
running it while the server runs is safe (SQLite WAL, short transactions).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sense_plugin.archive import dst
from sense_plugin.archive.index import ArchiveIndex, index_path
from sense_plugin.archive.probe import probe_segment
from sense_plugin.archive.scan import reconcile_device
from sense_plugin.config import Config, DeviceConfig
from sense_plugin.errors import MediaError, NoDeviceError
from sense_plugin.naming import NamePattern, compiled
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
    #: Served, but their names lie in a repeated DST hour nothing settled (first pass taken).
    ambiguous: list[Path] = field(default_factory=list)

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
        for path in self.ambiguous:
            yield (f"  AMBIGUOUS {path}: in the repeated hour of a DST change, which pass it "
                   "is cannot be told (taken as the first)")


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
    pattern = compiled(device.archive_pattern, device.archive_timezone)
    report = reconcile_device(index, device.device_id, device.archive_dir, settle_s=SETTLE_S,
                              pattern=pattern)
    total, skipped = index.skipped(device.device_id)
    return DeviceCheck(device, index.count(device.device_id),
                       index.recorded_range(device.device_id), total, skipped, report.pending,
                       ambiguous_segments(index, device, pattern))


def ambiguous_segments(index: ArchiveIndex, device: DeviceConfig,
                       pattern: NamePattern) -> list[Path]:
    """Indexed segments named in a repeated DST hour that neither the file nor continuity
    settles: the same decision the scanner made, taken again from the files and the index."""
    segments = index.segments(device.device_id, 0, 2**62)
    pending, spans = [], []
    for segment in segments:
        named = pattern.parse(segment.path.relative_to(device.archive_dir).as_posix()) \
            if segment.path.is_relative_to(device.archive_dir) else None
        info = None
        if named is not None and named.alt_us is not None:
            try:
                info = probe_segment(segment.path, named=named,
                                     mtime_ns=segment.path.stat().st_mtime_ns)
            except (MediaError, OSError):
                info = None
        if info is None or info.alt_start_us is None:
            spans.append((segment.start_us, segment.end_us))
            continue
        pending.append(dst.Unsettled(str(segment.path), info.start_us, info.alt_start_us,
                                     info.end_us - info.start_us))
    return [Path(key) for key in dst.settle(pending, spans)[1]]
