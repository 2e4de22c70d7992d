"""The HTTP surface: /info, the error envelope of every command, parameters, XML input, limits."""

from __future__ import annotations

from typing import Any

import pytest
from apiclient import command, parse_result
from conftest import API_DEVICES, API_SERVER_ID

from sense_plugin.api.commands import all_commands

ALL_NAMES = [c.name for c in all_commands()]


async def test_info_answers_time_and_version(client: Any) -> None:
    response = await client.get("/info")
    assert response.status == 200
    root = parse_result(await response.read(), "info")
    assert root.findtext("apiinfo/version") == __import__("sense_plugin").__version__


@pytest.mark.parametrize("name", [*ALL_NAMES, "noSuchCommand"])
async def test_error_envelope_for_every_command(client: Any, name: str) -> None:
    """A malformed parameter gets a well-formed negative result, never a crash or a 500."""
    response = await client.post("/command", params={"command": name, "serverid": "abc",
                                                     "deviceid": "x", "exportid": "x"},
                                 data=b"<not-xml")
    assert response.status == 200
    root = parse_result(await response.read(), None)
    code = int(root.get("errorcode"))
    assert code < 0 and code != -18
    assert root.findtext("description")
    if name == "noSuchCommand":
        assert code == -1 and "noSuchCommand" in root.findtext("description")


async def test_command_names_and_params_are_case_insensitive(client: Any) -> None:
    root = await command(client, "GETDEVICELIST", SERVERID=API_SERVER_ID)
    names = [d.findtext("name") for d in root.iterfind("devices/device")]
    assert names == list(API_DEVICES)
    response = await client.get("/command?Command=getdevicelist&noCache=123")
    assert parse_result(await response.read(), "getDeviceList").get("errorcode") == "0"


async def test_missing_and_empty_command(client: Any) -> None:
    response = await client.get("/command")
    assert parse_result(await response.read(), None).get("errorcode") == "-10"
    response = await client.get("/command?command=")
    assert parse_result(await response.read(), None).get("errorcode") == "-23"


async def test_url_decoding_and_repeated_parameters(client: Any) -> None:
    response = await client.get("/command?command=get%44eviceList")
    assert parse_result(await response.read(), "getDeviceList").get("errorcode") == "0"
    response = await client.get(f"/command?command=getServerStatus&deviceid={API_DEVICES['Steady']}"
                                f"&deviceid={API_DEVICES['Gappy']}")
    assert parse_result(await response.read(), None).get("errorcode") == "-22"


async def test_device_and_server_lookups(client: Any, api_archive: dict[str, Any]) -> None:
    await command(client, "getDeviceList", serverid="abc", expect=-17)
    await command(client, "getDeviceList", serverid=42, expect=-17)
    await command(client, "getServerStatus", deviceid=123, expect=-2)
    divas = await command(client, "getDivaList")
    assert divas.findtext("divas/diva/divaid") == str(API_SERVER_ID)
    options = await command(client, "getServerOptions")
    assert options.findtext("serveroptions/cameracount") == str(len(API_DEVICES))
    status = await command(client, "getServerStatus", deviceid=API_DEVICES["Steady"])
    first = status.findtext("serverstatus/devices/device/firstrecordedimage")
    assert first == __import__("sense_plugin.timestamps").timestamps.format_timestamp(
        api_archive["start_us"])


async def test_recordings_report_intervals_and_gaps(
        client: Any, api_archive: dict[str, Any]) -> None:
    from sense_plugin.timestamps import format_timestamp as fmt

    start, end = api_archive["start_us"], api_archive["end_us"]
    root = await command(client, "getRecordings", deviceid=API_DEVICES["Gappy"],
                         starttime=fmt(start - 10_000_000), endtime=fmt(end))
    intervals = [(i.findtext("starttime"), i.findtext("endtime"))
                 for i in root.iterfind("recordings/intervals/interval")]
    assert intervals == [(fmt(start), fmt(start + 20_000_000)), (fmt(start + 40_000_000), fmt(end))]
    gaps = root.findall("recordings/gaps/gap")
    assert [g.findtext("starttime") for g in gaps] == [fmt(start - 10_000_000),
                                                       fmt(start + 20_000_000)]
    await command(client, "getRecordings", deviceid=API_DEVICES["Gappy"], starttime=fmt(end),
                  endtime=fmt(start), expect=-22)
    await command(client, "getRecordings", deviceid=API_DEVICES["Gappy"],
                  starttime="2026-13-01 00:00:00", expect=-4)
    await command(client, "getRecordings", deviceid=1, expect=-2)


@pytest.mark.parametrize(("body", "code"), [
    (b"<export><devices>", -1003),
    (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
     b"<export>&lol2;</export>", -1003),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
     b"<export><path>&xxe;</path></export>", -1003),
    (b"<wrong/>", -1003),
    (b"<a>" * 100_000 + b"</a>" * 100_000, 413),
    (b"<a>" * 5_000 + b"</a>" * 5_000, -1003),
    (b"", -10),
    (b"<export/>", -10),
    (b"<export><devices/></export>", -10),
])
async def test_hostile_or_broken_xml(client: Any, body: bytes, code: int) -> None:
    response = await client.post("/command", params={"command": "exportVideo"}, data=body)
    if code == 413:
        assert response.status == 413
        code = -22
    root = parse_result(await response.read(), None)
    assert int(root.get("errorcode")) == code
    assert b"root:" not in await response.read()
    assert (await client.get("/info")).status == 200


async def test_login_with_auth_disabled_gives_a_session(client: Any) -> None:
    body = b"<AuthenticateUser><username>x</username><password>y</password></AuthenticateUser>"
    response = await client.post("/webservice", data=body)
    root = parse_result(await response.read(), "AuthenticateUser-response")
    assert response.cookies["sessionkey"].value == root.findtext("sessionkey")
    assert response.cookies["sessionkey"]["httponly"]
