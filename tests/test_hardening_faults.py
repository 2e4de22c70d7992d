"""Faults: source segments deleted or corrupted mid-export, job store locked.

SIGKILL mid-export lives in test_server_process.py and disk full in test_storage_full.py;
this module covers the source archive and the SQLite job store.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from apiclient import command, export_body, wait_export
from conftest import API_DEVICES, API_SERVER_ID

from sense_plugin.config import config_from_dict
from sense_plugin.export.localstore import STORE_FILE
from sense_plugin.timestamps import format_timestamp

STEADY = API_DEVICES["Steady"]


def private_config(tmp_path: Path, api_archive: dict[str, Any], **export: Any) -> Any:
    """A config whose Steady archive is a private, mutable copy of the API archive."""
    archive_dir = tmp_path / "archive" / "Steady"
    shutil.copytree(api_archive["dirs"]["Steady"], archive_dir)
    return config_from_dict({
        "server": {"serverid": str(API_SERVER_ID), "data_dir": "data"},
        "archive": {"demo": False},
        "devices": [{"deviceid": str(STEADY), "name": "Steady", "archive_dir": str(archive_dir)}],
        "export": export,
    }, base_dir=tmp_path)


async def wait_progress(client: Any, export_id: int, minimum: int) -> None:
    for _ in range(600):
        root = await command(client, "getExportVideoStatus", exportid=export_id)
        device = root.find("exports/export/devices/device")
        if int(device.findtext("progress")) >= minimum or device.findtext("status") != "SYNCING":
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"export {export_id} made no progress")


def break_segment(path: Path, how: str) -> None:
    if how == "deleted":
        path.unlink()
    else:  # the container structure is destroyed: the file can no longer be opened as MP4
        data = bytearray(path.read_bytes())
        data[:4096] = bytes(range(256)) * 16
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["deleted", "garbage"])
async def test_source_segment_broken_during_export(make_client: Callable[..., Any],
                                                   api_archive: dict[str, Any], tmp_path: Path,
                                                   how: str) -> None:
    """The export ends (gap reported, or that device FAILED with a clear code); never hangs."""
    config = private_config(tmp_path, api_archive)
    client = await make_client(config)
    segments = sorted(config.devices[0].archive_dir.iterdir())
    assert len(segments) >= 5
    start = format_timestamp(api_archive["start_us"])
    end = format_timestamp(api_archive["start_us"] + 30_000_000)
    root = await command(client, "exportVideo",
                         body=export_body([(STEADY, start, end)], bandwidth=600))
    export_id = int(root.findtext("exportid"))
    await wait_export(client, export_id, until=("SYNCING",))
    await wait_progress(client, export_id, 5)
    break_segment(segments[2], how)  # 20-30 s, not yet read

    export = await wait_export(client, export_id, timeout_s=60)
    device = export.find("devices/device")
    status = device.findtext("status")
    if status == "COMPLETED":
        gaps = device.findall("files/file/gaps/gap")
        assert gaps, "the lost segment must show as a gap"
    else:
        assert status == "FAILED"
        code = int(device.findtext("errorcode"))
        assert code != 0 and device.findtext("description")
        assert "Traceback" not in device.findtext("description")
    out_dir = config.server.export_roots[0] / "unnamed" / str(export_id)
    assert not list(out_dir.glob("*.part"))
    # the server keeps working: an export of the intact part completes
    ok_end = format_timestamp(api_archive["start_us"] + 5_000_000)
    root = await command(client, "exportVideo", body=export_body([(STEADY, start, ok_end)]))
    again = await wait_export(client, int(root.findtext("exportid")))
    assert again.findtext("status") == "COMPLETED"


def lock_store(config: Any) -> sqlite3.Connection:
    """Another process-like writer holding the job store's write lock."""
    db = sqlite3.connect(config.server.data_dir / STORE_FILE, isolation_level=None, timeout=5)
    db.execute("BEGIN EXCLUSIVE")
    return db


async def test_store_locked_at_admission_is_a_clear_error(make_client: Callable[..., Any],
                                                          make_config: Callable[..., Any],
                                                          api_archive: dict[str, Any]) -> None:
    config = make_config()
    client = await make_client(config)
    start = format_timestamp(api_archive["start_us"])
    end = format_timestamp(api_archive["start_us"] + 2_000_000)
    db = lock_store(config)
    try:
        root = await command(client, "exportVideo", body=export_body([(STEADY, start, end)]),
                             expect=None)
        assert int(root.get("errorcode")) < 0
        assert "job store" in root.findtext("description")
    finally:
        db.execute("ROLLBACK")
        db.close()
    listing = await command(client, "getExportVideoStatus")
    assert listing.find("exports").get("count") == "0"
    root = await command(client, "exportVideo", body=export_body([(STEADY, start, end)]))
    export = await wait_export(client, int(root.findtext("exportid")))
    assert export.findtext("status") == "COMPLETED"


async def test_store_locked_while_a_job_runs_does_not_stop_the_queue(
        make_client: Callable[..., Any], make_config: Callable[..., Any],
        api_archive: dict[str, Any]) -> None:
    """A job store failure mid-run ends that job; later exports still run."""
    config = make_config(export={"max_concurrent_jobs": 1})
    client = await make_client(config)
    start = format_timestamp(api_archive["start_us"])
    end = format_timestamp(api_archive["start_us"] + 3_000_000)
    root = await command(client, "exportVideo",
                         body=export_body([(STEADY, start, end)], bandwidth=200))
    first = int(root.findtext("exportid"))
    await wait_export(client, first, until=("SYNCING",))
    db = lock_store(config)
    try:
        await wait_export(client, first, timeout_s=30,
                          until=("COMPLETED", "FAILED", "REMOVED", "PENDING"))
        await asyncio.sleep(2.5)  # past the store's busy timeout
    finally:
        db.execute("ROLLBACK")
        db.close()
    root = await command(client, "exportVideo", body=export_body([(STEADY, start, end)]))
    second = await wait_export(client, int(root.findtext("exportid")), timeout_s=60)
    assert second.findtext("status") == "COMPLETED"
    await command(client, "getDeviceList")
