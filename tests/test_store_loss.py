"""The job store is never silently empty: ids never go back, a lost store is rebuilt from the
manifests on disk, a damaged one stops the server (exit 2) naming the file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from apiclient import command, export_body, wait_export
from conftest import API_DEVICES, API_SERVER_ID

from sense_plugin.testing.serverprocess import free_port
from sense_plugin.timestamps import format_timestamp

STEADY = API_DEVICES["Steady"]
STORE = "exports.sqlite3"


async def one_export(client: Any, archive: dict[str, Any], path: str) -> int:
    start = format_timestamp(archive["start_us"] + 1_000_000)
    end = format_timestamp(archive["start_us"] + 3_000_000)
    root = await command(client, "exportVideo",
                         body=export_body([(STEADY, start, end)], path=path))
    export_id = int(root.findtext("exportid"))
    assert (await wait_export(client, export_id)).findtext("status") == "COMPLETED"
    return export_id


def drop_store(data_dir: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (data_dir / (STORE + suffix)).unlink(missing_ok=True)


async def test_ids_never_go_back_when_the_store_is_lost(
        make_client: Callable[..., Any], make_config: Callable[..., Any],
        api_archive: dict[str, Any], tmp_path: Path) -> None:
    config = make_config()
    data_dir, root = config.server.data_dir, config.server.export_roots[0]
    client = await make_client(config)
    first = await one_export(client, api_archive, "a")
    await client.close()
    # the store is lost and the operator archived the exports: the high-water mark remains
    drop_store(data_dir)
    shutil.move(str(root), str(tmp_path / "archived"))
    client = await make_client(config)
    second = await one_export(client, api_archive, "a")
    assert second > first
    await client.close()
    # store and mark both gone, an export directory left (no manifest): ids continue above it
    drop_store(data_dir)
    (data_dir / "export-ids.hwm").unlink()
    (root / "a" / str(second) / "manifest.xml").unlink()
    client = await make_client(config)
    third = await one_export(client, api_archive, "b")
    assert third > second
    assert not (tmp_path / "archived" / "a" / str(third)).exists()


def write_toml(tmp_path: Path, archive: dict[str, Any]) -> Path:
    devices = "".join(
        f'[[devices]]\ndeviceid = "{API_DEVICES[n]}"\nname = "{n}"\n'
        f'archive_dir = "{archive["dirs"][n]}"\n' for n in ("Steady", "Gappy"))
    path = tmp_path / "sense.toml"
    path.write_text(f'[server]\nserverid = "{API_SERVER_ID}"\ndata_dir = "data"\n'
                    f'[archive]\ndemo = false\n{devices}')
    return path


@pytest.mark.parametrize("how", ["deleted", "emptied"])
async def test_a_missing_or_emptied_store_is_rebuilt_from_the_manifests(
        how: str, make_client: Callable[..., Any], make_config: Callable[..., Any],
        api_archive: dict[str, Any]) -> None:
    config = make_config()
    client = await make_client(config)
    before = []
    for n in range(2):
        export_id = await one_export(client, api_archive, f"case-{n}")
        before.append((await command(client, "getExportVideoStatus", exportid=export_id))
                      .find("exports/export"))
    await client.close()
    store = config.server.data_dir / STORE
    if how == "deleted":
        drop_store(config.server.data_dir)
    else:
        store.write_bytes(b"")
    client = await make_client(config)
    for old in before:
        export_id = old.findtext("exportid")
        new = (await command(client, "getExportVideoStatus", exportid=export_id))\
            .find("exports/export")
        for field in ("status", "path", "owner", "created", "format", "progress",
                      "devices/device/files/file/sha256", "devices/device/files/file/size",
                      "devices/device/starttime", "devices/device/endtime"):
            assert new.findtext(field) == old.findtext(field), field
        download = await client.get("/command", params={
            "command": "downloadExportVideo", "exportid": export_id,
            "file": old.findtext("devices/device/files/file/name")})
        assert len(await download.read()) == int(old.findtext("devices/device/files/file/size"))
    assert await one_export(client, api_archive, "case-x") == 3


async def test_a_damaged_store_stops_the_server_with_exit_2_naming_the_file(
        make_client: Callable[..., Any], make_config: Callable[..., Any],
        api_archive: dict[str, Any], tmp_path: Path) -> None:
    config = make_config()
    client = await make_client(config)
    for n in range(3):
        await one_export(client, api_archive, f"case-{n}")
    await client.close()
    store = config.server.data_dir / STORE
    for suffix in ("-wal", "-shm"):
        (config.server.data_dir / (STORE + suffix)).unlink(missing_ok=True)
    data = store.read_bytes()  # half-truncated, as a failing disk or a careless copy leaves it
    store.write_bytes(data[: len(data) // 2])
    proc = subprocess.run(
        [sys.executable, "-m", "sense_plugin", "serve", "--config",
         str(write_toml(tmp_path, api_archive)), "--port", str(free_port())],
        capture_output=True, text=True, timeout=60)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert str(store) in output and "Traceback" not in output, output
    for n in range(3):  # the evidence on disk is untouched
        assert (config.server.export_roots[0] / f"case-{n}" / str(n + 1) / "manifest.xml")\
            .is_file()


async def test_numbered_user_folders_are_not_taken_for_export_directories(
        make_client: Callable[..., Any], make_config: Callable[..., Any],
        api_archive: dict[str, Any]) -> None:
    config = make_config()
    client = await make_client(config)
    first = await one_export(client, api_archive, "cases/2026")
    await client.close()
    drop_store(config.server.data_dir)  # rebuilt from cases/2026/1/manifest.xml
    client = await make_client(config)
    status = await command(client, "getExportVideoStatus", exportid=first)
    assert status.findtext("exports/export/path") == "cases/2026"
    assert await one_export(client, api_archive, "cases/2027") == first + 1


async def test_parallel_creates_get_distinct_ids_and_the_mark_keeps_up(
        client: Any, make_config: Callable[..., Any], api_archive: dict[str, Any]) -> None:
    import asyncio

    start = format_timestamp(api_archive["start_us"] + 1_000_000)
    end = format_timestamp(api_archive["start_us"] + 2_000_000)
    answers = await asyncio.gather(*(
        command(client, "exportVideo", body=export_body([(STEADY, start, end)], path=f"p{n}"))
        for n in range(30)))
    export_ids = sorted(int(a.findtext("exportid")) for a in answers)
    assert export_ids == list(range(1, 31))
    mark = make_config().server.data_dir / "export-ids.hwm"
    assert mark.read_text().strip() == "30"
