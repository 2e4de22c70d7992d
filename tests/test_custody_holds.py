"""Evidence holds over the real app: past expiry, out of archive retention, not removable."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
from apiclient import command, export_body, wait_export
from conftest import API_SERVER_ID
from lxml import etree
from test_custody_audit import basic

from sense_plugin.api.keys import ARCHIVE
from sense_plugin.config import config_from_dict
from sense_plugin.passwords import hash_password
from sense_plugin.timestamps import format_timestamp

CAM = 4242
#: Exports expire 7.2 s after they finish; the sweep runs every 0.1 s.
SHORT_RETENTION = {"export_retention_hours": 0.002, "retention_sweep_s": 0.1}


@pytest.fixture
def cam_config(tmp_path: Path, api_archive: dict[str, Any]) -> Any:
    """A server whose one camera has a copy of the Steady archive that retention may cut
    (everything older than about 9 s goes at each archive retention pass)."""
    archive_dir = tmp_path / "cam"
    shutil.copytree(api_archive["dirs"]["Steady"], archive_dir)

    def make(**auth: Any) -> Any:
        return config_from_dict({
            "server": {"serverid": str(API_SERVER_ID), "data_dir": "data"},
            "archive": {"demo": False, "manage_foreign": True, "max_age_days": 0.0001},
            "export": SHORT_RETENTION, "auth": auth,
            "devices": [{"deviceid": str(CAM), "name": "Cam", "archive_dir": str(archive_dir)}],
        }, base_dir=tmp_path)

    return make


async def create(client: Any, archive: dict[str, Any], a_s: float, b_s: float,
                 headers: dict[str, str] | None = None) -> int:
    base = archive["start_us"]
    body = export_body([(CAM, format_timestamp(base + int(a_s * 1e6)),
                         format_timestamp(base + int(b_s * 1e6)))])
    root = await command(client, "exportVideo", body=body, headers=headers)
    return int(root.findtext("exportid"))


async def status(client: Any, export_id: int) -> etree._Element:
    root = await command(client, "getExportVideoStatus", exportid=export_id)
    return root.find("exports/export")


async def held_intervals(client: Any, archive: dict[str, Any]) -> list[tuple[str, str]]:
    root = await command(client, "getRecordings", deviceid=CAM,
                         starttime=format_timestamp(archive["start_us"] - 60_000_000),
                         endtime=format_timestamp(archive["end_us"] + 60_000_000))
    return [(i.findtext("starttime"), i.findtext("held") or "")
            for i in root.iterfind("recordings/intervals/interval")]


async def archive_retention(client: Any) -> None:
    """One archive retention pass now (the server runs one a minute)."""
    archive = client.app[ARCHIVE]
    await asyncio.get_running_loop().run_in_executor(None, archive._retention_pass)


async def recorded(client: Any, archive: dict[str, Any], a_s: float, b_s: float) -> bool:
    segments = await client.app[ARCHIVE].segments(
        CAM, archive["start_us"] + int(a_s * 1e6), archive["start_us"] + int(b_s * 1e6))
    return bool(segments)


async def audit_actions(client: Any, export_id: int, until: str,
                        timeout_s: float = 10.0) -> list[str | None]:
    """The export's audit actions once the last is ``until`` (or at the deadline): the
    retention pass records an expiry just after the export shows EXPIRED."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        actions = [r.findtext("action") for r in (await command(
            client, "getAuditLog", exportid=export_id)).iterfind("auditlog/record")]
        if actions[-1:] == [until] or asyncio.get_running_loop().time() > deadline:
            return actions
        await asyncio.sleep(0.05)


async def test_a_hold_outlives_expiry_and_archive_retention_until_released(
        make_client: Any, cam_config: Any, api_archive: dict[str, Any]) -> None:
    client = await make_client(cam_config())
    kept = await create(client, api_archive, 5, 9)
    other = await create(client, api_archive, 25, 29)
    for export_id in (kept, other):
        await wait_export(client, export_id)
    listed = await command(client, "getExportVideoStatus")  # a list answer, now cached
    assert listed.find("exports/export/hold") is None
    changed = await command(client, "exportVideo", action="hold", exportid=kept)
    listed = await command(client, "getExportVideoStatus")
    assert [e.findtext("hold") for e in listed.iterfind("exports/export")] == ["true", None]
    assert changed.findtext("status") == "COMPLETED"
    export = await status(client, kept)
    assert export.findtext("hold") == "true" and export.findtext("expires") == ""
    await wait_export(client, other, until=("EXPIRED",))  # retention runs meanwhile

    await archive_retention(client)
    assert await recorded(client, api_archive, 5, 9)  # the held footage is kept
    assert not await recorded(client, api_archive, 25, 29)  # the rest is gone
    assert [held for _, held in await held_intervals(client, api_archive)] == ["true"]

    # a restart keeps the hold, the files and the footage
    await client.close()
    client = await make_client(cam_config())
    await archive_retention(client)
    assert await recorded(client, api_archive, 5, 9)
    export = await status(client, kept)
    assert export.findtext("status") == "COMPLETED" and export.findtext("hold") == "true"
    name = export.findtext("devices/device/files/file/name")
    response = await client.get("/command", params={
        "command": "downloadExportVideo", "exportid": str(kept), "file": name})
    assert response.status == 200 and len(await response.read()) > 0

    removal = await command(client, "exportVideo", action="remove", exportid=kept, expect=-22)
    assert "held" in removal.findtext("description")
    await command(client, "exportVideo", action="release", exportid=kept)
    await command(client, "exportVideo", action="release", exportid=kept, expect=-22)
    await wait_export(client, kept, until=("EXPIRED",))  # its deadline passed long ago
    await archive_retention(client)
    assert not await recorded(client, api_archive, 5, 9)
    assert await audit_actions(client, kept, until="expiry") == [
        "create", "hold", "download", "release", "expiry"]


async def test_only_the_owner_or_an_admin_holds_and_only_finished_exports(
        make_client: Any, cam_config: Any, api_archive: dict[str, Any]) -> None:
    users = [{"name": n, "password_hash": hash_password(p), "permissions": perms}
             for n, p, perms in (("operator", "o-secret", ["view", "export"]),
                                 ("viewer", "v-secret", ["view", "export"]),
                                 ("boss", "b-secret", ["admin"]))]
    client = await make_client(cam_config(enabled=True, users=users))
    mine = await create(client, api_archive, 5, 9, basic("operator"))
    for _ in range(600):
        root = await command(client, "getExportVideoStatus", exportid=mine,
                             headers=basic("operator"))
        if root.findtext("exports/export/status") == "COMPLETED":
            break
        await asyncio.sleep(0.05)
    # another export user's export: not known to them (the same answer as a wrong id)
    refused = await command(client, "exportVideo", action="hold", exportid=mine,
                            headers=basic("viewer"), expect=-57)
    assert str(mine) in refused.findtext("description")
    await command(client, "exportVideo", action="hold", exportid=mine, headers=basic("boss"))
    await command(client, "exportVideo", action="release", exportid=mine,
                  headers=basic("operator"))
    not_held = await command(client, "exportVideo", action="release", exportid=mine,
                             headers=basic("operator"), expect=-22)
    assert "not held" in not_held.findtext("description")
