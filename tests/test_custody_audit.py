"""The audit trail over the real app: records of mixed work, getAuditLog, audit-verify."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from apiclient import command, export_body
from conftest import API_DEVICES
from lxml import etree
from test_auth import basic, users  # noqa: F401  (users: the fixture)
from test_manifest import export_dir

from sense_plugin.cli import main
from sense_plugin.timestamps import format_timestamp

STEADY = API_DEVICES["Steady"]


@pytest.fixture
def secure_config(make_config: Any, users: list[dict[str, Any]]) -> Any:  # noqa: F811
    return make_config(auth={"enabled": True, "users": users})


async def create(client: Any, archive: dict[str, Any], a_s: float, b_s: float,
                 user: str = "operator") -> int:
    base = archive["start_us"]
    body = export_body([(STEADY, format_timestamp(base + int(a_s * 1e6)),
                         format_timestamp(base + int(b_s * 1e6)))])
    root = await command(client, "exportVideo", body=body, headers=basic(user))
    return int(root.findtext("exportid"))


async def finished(client: Any, export_id: int, timeout_s: float = 30.0) -> etree._Element:
    """Poll the export's status (as an admin) until it is COMPLETED or FAILED."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        root = await command(client, "getExportVideoStatus", exportid=export_id,
                             headers=basic("boss"))
        export = root.find("exports/export")
        if export.findtext("status") in ("COMPLETED", "FAILED"):
            return export
        assert loop.time() < deadline, etree.tostring(export).decode()
        await asyncio.sleep(0.05)


async def download(client: Any, export_id: int, name: str, **headers: str) -> bytes:
    response = await client.get("/command", params={
        "command": "downloadExportVideo", "exportid": str(export_id), "file": name},
        headers={**basic("operator"), **headers})
    assert response.status in (200, 206), await response.text()
    return bytes(await response.read())


async def audit_log(client: Any, **params: Any) -> etree._Element:
    return await command(client, "getAuditLog", headers=basic("boss"), **params)


async def mixed_work(client: Any, archive: dict[str, Any]) -> tuple[int, int, int]:
    """Create, download (whole and a range), remove, retry, hold and release, a bad login."""
    first = await create(client, archive, 5, 9)
    export = await finished(client, first)
    name = export.findtext("devices/device/files/file/name")
    await download(client, first, name)
    await download(client, first, name, Range="bytes=0-99")
    await download(client, first, "manifest.xml")
    second = await create(client, archive, 10, 12)
    await finished(client, second)
    await command(client, "exportVideo", action="remove", exportid=second,
                  headers=basic("operator"))
    third = int((await command(client, "exportVideo", action="retry", exportid=second,
                               headers=basic("operator"))).findtext("exportid"))
    await finished(client, third)
    await command(client, "exportVideo", action="hold", exportid=first, headers=basic("operator"))
    await command(client, "exportVideo", action="release", exportid=first,
                  headers=basic("operator"))
    base = archive["start_us"]
    slow = export_body([(STEADY, format_timestamp(base), format_timestamp(base + 50_000_000))],
                       bandwidth=16)
    fourth = int((await command(client, "exportVideo", body=slow, headers=basic("operator"))
                  ).findtext("exportid"))
    await command(client, "exportVideo", action="stop", exportid=fourth,
                  headers=basic("operator"))
    response = await client.get("/command", params={"command": "getDeviceList"},
                                headers=basic("viewer", "wrong"))
    assert response.status == 401
    return first, second, third


async def test_mixed_work_is_recorded_and_the_chain_verifies(
        make_client: Any, secure_config: Any, api_archive: dict[str, Any], tmp_path: Path,
        capsys: Any) -> None:
    client = await make_client(secure_config)
    first, second, third = await mixed_work(client, api_archive)
    log = (await audit_log(client)).find("auditlog")
    records = log.findall("record")
    assert log.get("count") == log.get("total") == str(len(records))
    rows = [(r.findtext("action"), r.findtext("exportid"), r.findtext("user")) for r in records]
    assert rows == [
        ("create", str(first), "operator"),
        ("download", str(first), "operator"), ("download", str(first), "operator"),
        ("download", str(first), "operator"),
        ("create", str(second), "operator"), ("remove", str(second), "operator"),
        ("create", str(third), "operator"), ("retry", str(second), "operator"),
        ("hold", str(first), "operator"), ("release", str(first), "operator"),
        ("create", str(int(third) + 1), "operator"), ("stop", str(int(third) + 1), "operator"),
        ("loginfailure", "", "viewer"),
    ]
    assert [r.findtext("seq") for r in records] == [str(i) for i in range(1, 14)]
    assert records[2].findtext("detail").endswith("range=bytes=0-99")
    assert records[0].findtext("address") == "127.0.0.1"
    saved = tmp_path / "audit.xml"
    saved.write_bytes(etree.tostring(log.getparent()))
    assert main(["audit-verify", str(saved)]) == 0
    assert "PASSED" in capsys.readouterr().out

    # one byte changed in the detail of record 5 breaks the chain exactly there
    data = bytearray(saved.read_bytes())
    at = data.index(b"<detail>device", data.index(b"<seq>5</seq>")) + len("<detail>d")
    data[at] ^= 0x20
    saved.write_bytes(bytes(data))
    assert main(["audit-verify", str(saved)]) == 1
    assert "seq 5" in capsys.readouterr().out


async def test_filters_paging_permission_and_the_manifest_records(
        make_client: Any, secure_config: Any, api_archive: dict[str, Any], tmp_path: Path,
        capsys: Any) -> None:
    client = await make_client(secure_config)
    first, second, _ = await mixed_work(client, api_archive)
    await command(client, "getAuditLog", headers=basic("operator"), expect=-1002)
    mine = (await audit_log(client, exportid=second)).find("auditlog")
    assert [r.findtext("action") for r in mine] == ["create", "remove", "retry"]
    viewer = (await audit_log(client, user="viewer")).find("auditlog")
    assert [r.findtext("action") for r in viewer] == ["loginfailure"]
    page = (await audit_log(client, limit=3, offset=2)).find("auditlog")
    assert [r.findtext("seq") for r in page] == ["3", "4", "5"]
    assert page.get("total") == "13"
    every = (await audit_log(client)).find("auditlog").findall("record")
    start, end = every[4].findtext("time"), every[6].findtext("time")
    window = (await audit_log(client, starttime=start, endtime=end)).find("auditlog")
    assert {r.findtext("seq") for r in window} >= {"5", "6", "7"}
    assert all(start <= r.findtext("time") <= end for r in window)
    await command(client, "getAuditLog", headers=basic("boss"), starttime=end, endtime=start,
                  expect=-22)

    # the manifest of the first export carries its records up to its completion
    directory = export_dir(secure_config, (await finished(client, first)))
    manifest = etree.parse(str(directory / "manifest.xml")).getroot()
    listed = manifest.findall("audit/record")
    assert [r.findtext("action") for r in listed] == ["create"]
    assert listed[0].findtext("hash") == every[0].findtext("hash")
    saved = tmp_path / "audit.xml"
    saved.write_bytes(etree.tostring((await audit_log(client)).getroottree()))
    assert main(["verify", str(directory), "--audit", str(saved)]) == 0
    capsys.readouterr()


async def test_records_survive_a_restart_and_continue_the_chain(
        make_client: Any, secure_config: Any, api_archive: dict[str, Any], tmp_path: Path
) -> None:
    client = await make_client(secure_config)
    await finished(client, await create(client, api_archive, 1, 3))
    await client.close()
    again = await make_client(secure_config)
    await finished(again, await create(again, api_archive, 3, 5))
    log = (await audit_log(again)).getroottree()
    assert [r.findtext("seq") for r in log.getroot().iterfind(".//record")] == ["1", "2"]
    saved = tmp_path / "audit.xml"
    saved.write_bytes(etree.tostring(log))
    assert main(["audit-verify", str(saved)]) == 0


def test_the_documented_example_and_unambiguous_fields() -> None:
    """The record worked through in docs/custody.rst hashes as printed there; fields that
    would run together when merely joined by newlines stay apart."""
    from sense_plugin.export.audit import GENESIS_HASH, chain_hash, fields_of

    example = fields_of(1, "2026-12-07 05:20:00.123", "operator", "192.0.2.10", "create",
                        "42", "device 100100")
    assert example == (b"1:1\n23:2026-12-07 05:20:00.123\n8:operator\n10:192.0.2.10\n"
                       b"6:create\n2:42\n13:device 100100\n")
    assert chain_hash(GENESIS_HASH, example) == (
        "3fe42e6000ecd68d3ffe3e7c27e29b0a4c33cbab223086d8b599827769552f54")
    docs = (Path(__file__).parents[1] / "docs" / "custody.rst").read_text()
    assert "3fe42e6000ecd68d3ffe3e7c27e29b0a4c33cbab223086d8b599827769552f54" in docs
    shifted = [fields_of(1, "t", "alice\nbob", "", "create", "", ""),
               fields_of(1, "t", "alice", "bob", "create", "", "")]
    assert shifted[0] != shifted[1]
