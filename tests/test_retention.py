"""Export retention: files expire at their stored deadline (also across restarts), records purge."""

from __future__ import annotations

import asyncio
from typing import Any

from apiclient import command, export_body, wait_export
from conftest import API_DEVICES

from sense_plugin.timestamps import format_timestamp

STEADY = API_DEVICES["Steady"]


async def create(client: Any, archive: dict[str, Any]) -> int:
    base = archive["start_us"]
    body = export_body([(STEADY, format_timestamp(base + 2_000_000),
                         format_timestamp(base + 6_000_000))], path="keep")
    return int((await command(client, "exportVideo", body=body)).findtext("exportid"))


async def test_completed_export_expires_and_downloads_answer_1006(
        make_client: Any, make_config: Any, api_archive: dict[str, Any]) -> None:
    config = make_config(export={"export_retention_hours": 1e-6, "retention_sweep_s": 0.05})
    client = await make_client(config)
    export_id = await create(client, api_archive)
    export = await wait_export(client, export_id, until=("EXPIRED",))
    assert [d.findtext("status") for d in export.iterfind("devices/device")] == ["EXPIRED"]
    assert export.find("devices/device/files") is None
    assert not (config.server.export_roots[0] / "keep" / str(export_id)).exists()
    response = await client.get("/command", params={
        "command": "downloadExportVideo", "exportid": export_id, "file": "manifest.xml"})
    assert b'errorcode="-1006"' in await response.read()
    # retry of an EXPIRED export makes a new one with the same parameters
    retried = await command(client, "exportVideo", action="retry", exportid=export_id)
    assert int(retried.findtext("exportid")) > export_id


async def test_stored_deadline_expires_after_a_restart(
        make_client: Any, make_config: Any, api_archive: dict[str, Any]) -> None:
    # first life: a 0.5 s deadline, but the sweep would only run again after an hour
    first = await make_client(make_config(export={"export_retention_hours": 0.5 / 3600,
                                                  "retention_sweep_s": 3600}))
    export_id = await create(first, api_archive)
    assert (await wait_export(first, export_id)).findtext("status") == "COMPLETED"
    await first.close()
    await asyncio.sleep(0.6)
    # second life: a long retention in config, yet the stored deadline has passed
    second = await make_client(make_config(export={"retention_sweep_s": 0.05}))
    export = await wait_export(second, export_id, until=("EXPIRED",))
    assert export.findtext("status") == "EXPIRED"
    await second.close()
    third = await make_client(make_config())
    export = await wait_export(third, export_id, until=("EXPIRED",), timeout_s=1)
    assert export.findtext("status") == "EXPIRED"  # persisted, not recomputed


async def test_records_are_purged_after_history_days(
        make_client: Any, make_config: Any, api_archive: dict[str, Any]) -> None:
    config = make_config(export={"export_retention_hours": 1e-6, "history_days": 1e-8,
                                 "retention_sweep_s": 0.05})
    client = await make_client(config)
    export_id = await create(client, api_archive)
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        root = await command(client, "getExportVideoStatus", exportid=export_id, expect=None)
        if root.get("errorcode") == "-57":
            break
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    await client.close()
    again = await make_client(make_config())
    await command(again, "getExportVideoStatus", exportid=export_id, expect=-57)
    assert int((await command(again, "exportVideo", body=export_body([(
        STEADY, format_timestamp(api_archive["start_us"] + 1_000_000),
        format_timestamp(api_archive["start_us"] + 2_000_000))]))).findtext("exportid")) > export_id
