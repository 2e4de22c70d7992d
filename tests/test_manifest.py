"""manifest.xml and ``sense-plugin verify``: written when an export finishes, checked from disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from apiclient import command, export_body, schema, wait_export
from conftest import API_DEVICES
from lxml import etree

from sense_plugin.cli import main
from sense_plugin.export.verify import verify_directory
from sense_plugin.timestamps import format_timestamp

STEADY, OFF_RANGE = API_DEVICES["Steady"], API_DEVICES["Gappy"]


def export_dir(config: Any, export: etree._Element) -> Path:
    folder = export.findtext("path") or "unnamed"
    return config.server.export_roots[0] / folder / export.findtext("exportid")


async def finished_export(client: Any, archive: dict[str, Any], *devices: tuple[int, float, float],
                          **fields: Any) -> etree._Element:
    base = archive["start_us"]
    items = [(d, format_timestamp(base + int(a * 1e6)), format_timestamp(base + int(b * 1e6)))
             for d, a, b in devices]
    root = await command(client, "exportVideo", body=export_body(items, **fields))
    return await wait_export(client, int(root.findtext("exportid")))


async def test_manifest_lists_every_file_with_the_status_facts(
        client: Any, make_config: Any, api_archive: dict[str, Any]) -> None:
    export = await finished_export(client, api_archive, (STEADY, 5, 15), path="m1", name="Case")
    assert export.findtext("status") == "COMPLETED"
    directory = export_dir(make_config(), export)
    manifest = etree.parse(str(directory / "manifest.xml")).getroot()
    assert schema("manifest").validate(manifest), schema("manifest").error_log
    assert manifest.findtext("exportid") == export.findtext("exportid")
    assert manifest.findtext("owner") == "anonymous"
    assert manifest.findtext("name") == "Case"
    status_file = export.find("devices/device/files/file")
    listed = manifest.find("devices/device/file")
    for tag in ("name", "size", "sha256", "framecount"):
        assert listed.findtext(tag) == status_file.findtext(tag)
    assert listed.findtext("firstframe") == status_file.findtext("starttime")
    assert listed.findtext("lastframe") == status_file.findtext("endtime")
    assert verify_directory(directory).ok


async def test_manifest_names_failed_devices_with_their_error(
        client: Any, make_config: Any, api_archive: dict[str, Any]) -> None:
    # the second device asks for a range after the recording: -9 for that device only
    export = await finished_export(client, api_archive, (STEADY, 1, 3), (OFF_RANGE, 62, 64))
    assert export.findtext("status") == "FAILED"
    manifest = etree.parse(str(export_dir(make_config(), export) / "manifest.xml")).getroot()
    assert schema("manifest").validate(manifest), schema("manifest").error_log
    ok, failed = manifest.findall("devices/device")
    assert ok.find("file") is not None and ok.findtext("status") == "COMPLETED"
    assert failed.findtext("status") == "FAILED" and failed.findtext("errorcode") == "-9"


async def test_verify_fails_on_tampered_missing_and_extra_files(
        client: Any, make_config: Any, api_archive: dict[str, Any],
        capsys: Any) -> None:
    export = await finished_export(client, api_archive, (STEADY, 5, 8))
    directory = export_dir(make_config(), export)
    assert main(["verify", str(directory)]) == 0
    assert "OK " in capsys.readouterr().out
    video = directory / export.findtext("devices/device/files/file/name")
    data = bytearray(video.read_bytes())
    data[len(data) // 2] ^= 0x01
    video.write_bytes(bytes(data))
    assert main(["verify", str(directory)]) == 1
    assert f"MISMATCH {video.name}" in capsys.readouterr().out
    (directory / "stray.bin").write_bytes(b"x")
    video.unlink()
    assert main(["verify", str(directory)]) == 1
    out = capsys.readouterr().out
    assert f"MISSING {video.name}" in out and "EXTRA stray.bin" in out


def test_verify_without_manifest_is_an_error(tmp_path: Path, capsys: Any) -> None:
    assert main(["verify", str(tmp_path)]) == 1
    assert "manifest.xml" in capsys.readouterr().out
    (tmp_path / "manifest.xml").write_text("<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]>"
                                           "<manifest><devices><device><file><name>../x</name>"
                                           "<size>1</size><sha256>00</sha256></file></device>"
                                           "</devices></manifest>")
    assert main(["verify", str(tmp_path)]) == 1
    assert "not a plain file name" in capsys.readouterr().out


async def test_an_export_whose_devices_all_failed_has_a_directory_and_manifest(
        client: Any, make_config: Any, api_archive: dict[str, Any], capsys: Any) -> None:
    export = await finished_export(client, api_archive, (OFF_RANGE, 62, 64), path="nothing")
    assert export.findtext("status") == "FAILED"
    directory = export_dir(make_config(), export)
    manifest = etree.parse(str(directory / "manifest.xml")).getroot()
    assert schema("manifest").validate(manifest), schema("manifest").error_log
    assert manifest.findtext("status") == "FAILED"
    assert manifest.findtext("devices/device/errorcode") == "-9"
    download = await client.get("/command", params={
        "command": "downloadExportVideo", "exportid": export.findtext("exportid"),
        "file": "manifest.xml"})
    assert await download.read() == (directory / "manifest.xml").read_bytes()
    assert main(["verify", str(directory)]) == 1
    out = capsys.readouterr().out
    assert "EXPORT FAILED: 1 of 1 devices failed" in out
    assert f"FAILED device {OFF_RANGE} (Gappy): errorcode -9:" in out
