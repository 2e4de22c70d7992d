"""The largest manifests the export limits allow are still read back: a lost job store is
rebuilt, over the real server, from the manifest of a 24-h export of two cameras split at
1 MB (43,200 parts each, about 31 MiB of manifest)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from apiclient import command, export_body, wait_export
from conftest import API_DEVICES

from sense_plugin.export.manifest import MANIFEST_NAME, write_manifest
from sense_plugin.export.model import Status
from sense_plugin.export.rebuild import export_from_manifest
from sense_plugin.filemodel import FileInfo
from sense_plugin.timestamps import format_timestamp

DAY_S = 86_400
PARTS = DAY_S * 4_000_000 // 8 // 1_000_000  # 24 h at 4 Mbit/s in 1-MB parts


def day_of_parts(first: FileInfo, camera: str) -> tuple[FileInfo, ...]:
    step_us = DAY_S * 1_000_000 // PARTS
    return tuple(dataclasses.replace(
        first, name=f"{camera} 20260101-000000 part{n + 1:05d}.mp4", size_bytes=998_766,
        first_frame_us=first.first_frame_us + n * step_us,
        last_frame_us=first.first_frame_us + (n + 1) * step_us - 40_000, frame_count=50)
        for n in range(PARTS))


async def test_a_store_is_rebuilt_from_the_largest_manifests(
        make_client: Callable[..., Any], make_config: Callable[..., Any],
        api_archive: dict[str, Any]) -> None:
    config = make_config()
    client = await make_client(config)
    start = format_timestamp(api_archive["start_us"])
    end = format_timestamp(api_archive["start_us"] + 2_000_000)
    root = await command(client, "exportVideo", body=export_body(
        [(API_DEVICES["Steady"], start, end), (API_DEVICES["Matroska"], start, end)],
        maxfilesize=1))
    export_id = int(root.findtext("exportid"))
    assert (await wait_export(client, export_id)).findtext("status") == "COMPLETED"
    await client.close()
    # The same export as if each camera had recorded a whole day at the smallest split.
    directory = next(config.server.export_roots[0].rglob(str(export_id)))
    export = export_from_manifest(directory, 24.0)
    for job in export.jobs:
        job.parts = day_of_parts(job.files[0], f"Camera {job.index}")
        job.file = job.parts[0]
    write_manifest(export, Status.COMPLETED, export.finished_us or 0, config.server.export_roots)
    assert (directory / MANIFEST_NAME).stat().st_size > 24 * 2**20
    store = Path(config.server.data_dir) / "exports.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    client = await make_client(config)  # rebuilds the store from the manifests on disk
    root = await command(client, "getExportVideoStatus", exportid=export_id)
    devices = root.findall("exports/export/devices/device")
    files = [d.findall("files/file") for d in devices]
    assert [len(f) for f in files] == [PARTS, PARTS]
    assert files[1][-1].findtext("name") == f"Camera 1 20260101-000000 part{PARTS:05d}.mp4"
