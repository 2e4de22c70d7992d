"""Readable lines about the archive: what a reconcile changed, what each device holds, what
was skipped."""

from __future__ import annotations

from dataclasses import fields

from sense_plugin.archive.index import ArchiveIndex
from sense_plugin.archive.scan import ScanReport
from sense_plugin.configmodel import DeviceConfig
from sense_plugin.timestamps import US_PER_S, format_timestamp


def describe_scan(report: ScanReport) -> str:
    """``3 added, 1 removed`` (only what changed), or ``up to date``."""
    parts = [f"{getattr(report, f.name)} {f.name}" for f in fields(report)
             if getattr(report, f.name)]
    return ", ".join(parts) if parts else "up to date"


def describe_devices(index: ArchiveIndex, devices: tuple[DeviceConfig, ...]) -> list[str]:
    """One line per device: segment count, recorded range and its length."""
    lines = []
    for device in devices:
        count = index.count(device.device_id)
        span = index.recorded_range(device.device_id)
        if span is None:
            lines.append(f"{device.name} ({device.device_id}): empty")
            continue
        first_us, last_us = span
        minutes = (last_us - first_us) / US_PER_S / 60
        lines.append(f"{device.name} ({device.device_id}): {count} segments, "
                     f"{format_timestamp(first_us)} .. {format_timestamp(last_us)} "
                     f"({minutes:.1f} min)")
    return lines


def describe_skipped(total: int, device_id: int, device: DeviceConfig | None) -> str:
    """For a -9 description: how many of the device's ``total`` files were skipped and where
    to look, or ``""`` when none were."""
    if not total:
        return ""
    pattern = device.archive_pattern if device is not None else ""
    return (f"; {total} file(s) in the device's archive were skipped (names not matching "
            f"archive_pattern '{pattern}', or unreadable): see the server log or run "
            f"'sense-plugin archive-check --device {device_id}'")
