"""Retry and ownership over HTTP: who sees and manages which export, and what retry makes."""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Any

import pytest
from apiclient import command, export_body, wait_export
from conftest import API_DEVICES

from sense_plugin.passwords import hash_password
from sense_plugin.timestamps import format_timestamp

STEADY, GAPPY = API_DEVICES["Steady"], API_DEVICES["Gappy"]
USERS = {"alice": ["view", "export"], "bob": ["view", "export"], "viewer": ["view"],
         "boss": ["admin"]}


def auth(user: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{user}-pw".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def body(archive: dict[str, Any], start_s: float, end_s: float, device: int = STEADY,
         **fields: Any) -> str:
    base = archive["start_us"]
    return export_body([(device, format_timestamp(base + int(start_s * 1e6)),
                         format_timestamp(base + int(end_s * 1e6)))], **fields)


@pytest.fixture(scope="module")
def users_table() -> list[dict[str, Any]]:
    return [{"name": n, "password_hash": hash_password(f"{n}-pw"), "permissions": p}
            for n, p in USERS.items()]


async def test_retry_query_and_body_forms(client: Any, api_archive: dict[str, Any]) -> None:
    # Gappy ends 60 s into the archive: a later range fails with -9
    root = await command(client, "exportVideo", body=body(api_archive, 62, 64, GAPPY, path="r"))
    failed_id = int(root.findtext("exportid"))
    assert (await wait_export(client, failed_id)).findtext("status") == "FAILED"
    retried = await command(client, "exportVideo", action="retry", exportid=failed_id)
    new_id = int(retried.findtext("exportid"))
    assert new_id > failed_id
    new = await wait_export(client, new_id)
    assert new.findtext("retriedfrom") == str(failed_id) and new.findtext("path") == "r"
    assert new.findtext("devices/device/starttime") == format_timestamp(
        api_archive["start_us"] + 62_000_000)
    old = await command(client, "getExportVideoStatus", exportid=failed_id)
    assert old.findtext("exports/export/status") == "FAILED"  # the old record stays
    # body form, on a REMOVED export
    ok_id = int((await command(client, "exportVideo", body=body(api_archive, 1, 3)))
                .findtext("exportid"))
    await wait_export(client, ok_id)
    await command(client, "exportVideo", action="remove", exportid=ok_id)
    again = await command(client, "exportVideo", body=f"<export><exportid>{ok_id}</exportid>"
                                                      "<action>RETRY</action></export>")
    assert int(again.findtext("exportid")) > new_id
    # COMPLETED cannot be retried
    done_id = int(again.findtext("exportid"))
    await wait_export(client, done_id)
    described = await command(client, "exportVideo", action="retry", exportid=done_id, expect=-22)
    assert "COMPLETED" in described.findtext("description")


async def test_retry_of_a_syncing_export_is_refused(client: Any,
                                                    api_archive: dict[str, Any]) -> None:
    # a 60 s export capped at 16 kbit/s runs for many seconds
    root = await command(client, "exportVideo", body=body(api_archive, 0, 60, bandwidth=16))
    export_id = int(root.findtext("exportid"))
    await wait_export(client, export_id, until=("SYNCING",))
    refused = await command(client, "exportVideo", action="retry", exportid=export_id, expect=-22)
    assert "SYNCING" in refused.findtext("description")
    await command(client, "exportVideo", action="remove", exportid=export_id)


async def test_users_see_and_manage_only_their_own(make_client: Any, make_config: Any,
                                                   users_table: list[dict[str, Any]],
                                                   api_archive: dict[str, Any]) -> None:
    client = await make_client(make_config(auth={"enabled": True, "users": users_table}))
    mine = await command(client, "exportVideo", body=body(api_archive, 1, 3), headers=auth("alice"))
    export_id = int(mine.findtext("exportid"))
    export = await wait_export_as(client, export_id, "alice")
    assert export.findtext("owner") == "alice"
    name = export.findtext("devices/device/files/file/name")
    unknown = await command(client, "getExportVideoStatus", exportid=99999, expect=-57,
                            headers=auth("bob"))
    hidden = await command(client, "getExportVideoStatus", exportid=export_id, expect=-57,
                           headers=auth("bob"))
    assert same_shape(unknown.findtext("description"), hidden.findtext("description"))
    listed = await command(client, "getExportVideoStatus", headers=auth("bob"))
    assert listed.find("exports").get("count") == "0"
    for action in ("remove", "retry"):
        await command(client, "exportVideo", action=action, exportid=export_id, expect=-57,
                      headers=auth("bob"))
    response = await client.get("/command", headers=auth("bob"), params={
        "command": "downloadExportVideo", "exportid": export_id, "file": name})
    assert b'errorcode="-57"' in await response.read()
    await command(client, "exportVideo", body=body(api_archive, 1, 3), expect=-1002,
                  headers=auth("viewer"))
    await command(client, "exportVideo", action="retry", exportid=export_id, expect=-1002,
                  headers=auth("viewer"))
    everything = await command(client, "getExportVideoStatus", headers=auth("boss"))
    assert everything.find("exports").get("count") == "1"
    removed = await command(client, "exportVideo", action="remove", exportid=export_id,
                            headers=auth("boss"))
    assert removed.findtext("status") == "REMOVED"
    response = await client.get("/command", params={"command": "getExportVideoStatus"})
    assert response.status == 401


async def wait_export_as(client: Any, export_id: int, user: str) -> Any:
    for _ in range(600):
        root = await command(client, "getExportVideoStatus", exportid=export_id,
                             headers=auth(user))
        export = root.find("exports/export")
        if export.findtext("status") in ("COMPLETED", "FAILED"):
            return export
        await asyncio.sleep(0.05)
    raise AssertionError("export did not finish")


def same_shape(a: str, b: str) -> bool:
    return re.sub(r"\d+", "N", a) == re.sub(r"\d+", "N", b)


async def test_every_export_event_has_an_info_line(client: Any, api_archive: dict[str, Any],
                                                   caplog: Any) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="sense_plugin")
    ok_id = int((await command(client, "exportVideo", body=body(api_archive, 1, 3, path="logs")))
                .findtext("exportid"))
    await wait_export(client, ok_id)
    bad_id = int((await command(client, "exportVideo", body=body(api_archive, 62, 64, GAPPY)))
                 .findtext("exportid"))
    await wait_export(client, bad_id)
    await command(client, "exportVideo", action="remove", exportid=ok_id)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    expected = [
        rf"export {ok_id} created by \S+: device {STEADY} .* to .* into .*logs/{ok_id}",
        rf"export {ok_id} device {STEADY} started",
        rf"export {ok_id} device {STEADY} completed: .*, \d+ bytes in [\d.]+ s \(\d+ kbit/s\)",
        rf"export {bad_id} device {GAPPY} failed: errorcode -9: ",
        rf"export {ok_id} removed by ",
    ]
    for pattern in expected:
        assert any(re.search(pattern, line) for line in lines), (pattern, lines)
