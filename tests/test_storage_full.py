"""A real ENOSPC mid-write (a small tmpfs as an export root): that device fails -1007, cleanly."""

from __future__ import annotations

import asyncio
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apiclient import command, export_body, wait_export
from conftest import API_DEVICES

from sense_plugin.timestamps import format_timestamp

STEADY, GAPPY = API_DEVICES["Steady"], API_DEVICES["Gappy"]
TMPFS_MB = 20  # above the 16 MiB free-space reserve, so the pre-check passes


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 20 MiB tmpfs under ``tmp_path`` (needs root / CAP_SYS_ADMIN; skipped otherwise)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m", "tmpfs",
                           str(mount_point)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def fill(directory: Path) -> int:
    """Write a filler file until the file system is full; returns the bytes written."""
    written = 0
    block = b"\0" * (1024 * 1024)
    with open(directory / "filler.bin", "wb", buffering=0) as handle:
        while True:
            try:
                written += handle.write(block[: 4096 if written > (TMPFS_MB - 1) << 20 else None])
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                return written


async def test_disk_full_mid_write_fails_that_device_only(
        make_client: Any, make_config: Any, small_disk: Path, tmp_path: Path,
        api_archive: dict[str, Any]) -> None:
    roots = [str(tmp_path / "exports"), str(small_disk)]
    client = await make_client(make_config(server={"export_roots": roots}))
    base = api_archive["start_us"]
    span = (format_timestamp(base), format_timestamp(base + 60_000_000))
    # slow (capped) export onto the small disk; a normal one onto the big disk
    doomed = await command(client, "exportVideo", body=export_body(
        [(STEADY, *span)], path=str(small_disk / "case"), bandwidth=64))
    doomed_id = int(doomed.findtext("exportid"))
    healthy = await command(client, "exportVideo", body=export_body([(GAPPY, *span)]))
    healthy_id = int(healthy.findtext("exportid"))
    for _ in range(600):
        status = await command(client, "getExportVideoStatus", exportid=doomed_id)
        if int(status.findtext("exports/export/devices/device/bytes")) > 0:
            break
        await asyncio.sleep(0.05)
    await asyncio.to_thread(fill, small_disk)
    export = await wait_export(client, doomed_id, timeout_s=60)
    device = export.find("devices/device")
    assert device.findtext("status") == "FAILED"
    assert device.findtext("errorcode") == "-1007", device.findtext("description")
    assert "full" in device.findtext("description")
    leftovers = [p.name for p in (small_disk / "case").rglob("*") if p.suffix in (".part", ".mp4")]
    assert leftovers == []
    other = await wait_export(client, healthy_id)
    assert other.findtext("status") == "COMPLETED"
