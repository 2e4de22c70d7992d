"""The case bundle and MIME types over the real app; the bundle is checked with openssl."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
from apiclient import command, export_body, wait_export
from conftest import API_DEVICES
from lxml import etree
from test_manifest import export_dir, finished_export
from ziporacles import (
    bsdtar_stream,
    needs_readers,
    unzip_member,
    unzip_test,
    zipinfo_versions,
)

from sense_plugin.api.app import create_app
from sense_plugin.api.bundle import BUNDLE_ZIP64_FROM
from sense_plugin.timestamps import format_timestamp

STEADY, MATROSKA = API_DEVICES["Steady"], API_DEVICES["Matroska"]
MEMBERS = {"manifest.xml", "manifest.sig", "signing-key.pub.pem", "README.txt"}


async def get_bundle(client: Any, export_id: str, **headers: str) -> Any:
    return await client.get("/command", params={
        "command": "downloadExportVideo", "exportid": export_id, "file": "bundle.zip"},
        headers=headers)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command line")
async def test_the_bundle_holds_every_file_and_checks_with_openssl(
        client: Any, api_archive: dict[str, Any], tmp_path: Path) -> None:
    export = await finished_export(client, api_archive, (STEADY, 5, 9), (MATROSKA, 5, 9),
                                   format="mkv")
    export_id = export.findtext("exportid")
    files = {f.findtext("name"): f for f in export.iterfind("devices/device/files/file")}
    response = await get_bundle(client, export_id)
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/zip"
    data = bytes(await response.read())
    assert int(response.headers["Content-Length"]) == len(data)
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        assert bundle.testzip() is None
        assert set(bundle.namelist()) == set(files) | MEMBERS
        assert {i.compress_type for i in bundle.infolist()} == {zipfile.ZIP_STORED}
        assert {i.extract_version for i in bundle.infolist()} == {10}  # no ZIP64 needed
        bundle.extractall(tmp_path)
    assert "openssl pkeyutl -verify" in (tmp_path / "README.txt").read_text()
    check = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey",
             str(tmp_path / "signing-key.pub.pem"), "-rawin", "-in",
             str(tmp_path / "manifest.xml"), "-sigfile", str(tmp_path / "manifest.sig")]
    assert subprocess.run(check, capture_output=True, check=False).returncode == 0
    manifest = etree.parse(str(tmp_path / "manifest.xml")).getroot()
    for listed in manifest.iterfind("devices/device/file"):
        name = listed.findtext("name")
        digest = subprocess.run(["openssl", "dgst", "-sha256", "-r", str(tmp_path / name)],
                                capture_output=True, check=True, text=True).stdout.split()[0]
        assert digest == listed.findtext("sha256") == files[name].findtext("sha256")
    # one byte changed in the manifest: openssl refuses it
    changed = bytearray((tmp_path / "manifest.xml").read_bytes())
    changed[len(changed) // 2] ^= 0x01
    (tmp_path / "manifest.xml").write_bytes(bytes(changed))
    assert subprocess.run(check, capture_output=True, check=False).returncode != 0


async def test_bundle_ranges_head_and_unfinished_exports(
        client: Any, api_archive: dict[str, Any]) -> None:
    export = await finished_export(client, api_archive, (STEADY, 1, 4))
    export_id = export.findtext("exportid")
    whole = bytes(await (await get_bundle(client, export_id)).read())
    part = await get_bundle(client, export_id, Range="bytes=100-1999")
    assert part.status == 206
    assert part.headers["Content-Range"] == f"bytes 100-1999/{len(whole)}"
    assert bytes(await part.read()) == whole[100:2000]
    tail = await get_bundle(client, export_id, Range="bytes=-300")
    assert bytes(await tail.read()) == whole[-300:]
    past = await get_bundle(client, export_id, Range=f"bytes={len(whole)}-")
    assert past.status == 416
    head = await client.head("/command", params={
        "command": "downloadExportVideo", "exportid": export_id, "file": "bundle.zip"})
    assert head.status == 200 and int(head.headers["Content-Length"]) == len(whole)
    assert hashlib.sha256(whole).hexdigest() == hashlib.sha256(
        bytes(await (await get_bundle(client, export_id)).read())).hexdigest()

    base = api_archive["start_us"]
    slow = export_body([(STEADY, format_timestamp(base), format_timestamp(base + 59_000_000))],
                       bandwidth=16)
    running = (await command(client, "exportVideo", body=slow)).findtext("exportid")
    refused = await command(client, "downloadExportVideo", exportid=running,
                            file="bundle.zip", expect=-1006)
    assert "bundle" in refused.findtext("description")
    assert running in refused.findtext("description")
    await command(client, "exportVideo", action="remove", exportid=running)


async def test_every_file_names_its_mime_type_as_its_download_does(
        client: Any, api_archive: dict[str, Any], make_config: Any) -> None:
    streams = await finished_export(client, api_archive, (STEADY, 5, 7), (MATROSKA, 5, 7),
                                    format="mkv")
    ts = await finished_export(client, api_archive, (STEADY, 5, 7), format="ts")
    base = api_archive["start_us"]
    snap = export_body([(STEADY, format_timestamp(base + 6_000_000),
                         format_timestamp(base + 7_000_000))], output="snapshot", format="png")
    png = await wait_export(client, int((await command(client, "exportVideo", body=snap)
                                         ).findtext("exportid")))
    seen = {}
    for export in (streams, ts, png):
        export_id = export.findtext("exportid")
        for listed in export.iterfind("devices/device/files/file"):
            name, mime = listed.findtext("name"), listed.findtext("mimetype")
            response = await client.get("/command", params={
                "command": "downloadExportVideo", "exportid": export_id, "file": name})
            assert response.headers["Content-Type"] == mime
            seen[Path(name).suffix] = mime
        manifest = await client.get("/command", params={
            "command": "downloadExportVideo", "exportid": export_id, "file": "manifest.xml"})
        assert manifest.headers["Content-Type"] == "text/xml"
        document = etree.fromstring(await manifest.read())
        assert [f.findtext("mimetype") for f in document.iterfind("devices/device/file")] == [
            f.findtext("mimetype") for f in export.iterfind("devices/device/files/file")]
    assert seen == {".mkv": "video/x-matroska", ".ts": "video/mp2t", ".png": "image/png"}


@needs_readers
async def test_a_bundle_in_zip64_reads_whole_and_by_ranges(
        aiohttp_client: Any, make_config: Any, api_archive: dict[str, Any],
        tmp_path: Path) -> None:
    config = make_config()
    app = create_app(config)
    app[BUNDLE_ZIP64_FROM] = 4096  # every video file, and every file after the first 4 KiB
    client = await aiohttp_client(app)
    export = await finished_export(client, api_archive, (STEADY, 5, 9), (MATROSKA, 5, 9),
                                   format="mkv")
    export_id = export.findtext("exportid")
    directory = export_dir(config, export)
    names = [f.findtext("name") for f in export.iterfind("devices/device/files/file")]
    response = await get_bundle(client, export_id)
    whole = bytes(await response.read())
    assert int(response.headers["Content-Length"]) == len(whole)
    assert whole[-42:-38] == b"PK\x06\x07"  # the ZIP64 locator, before the 22-byte end
    path = tmp_path / "bundle.zip"
    path.write_bytes(whole)
    with zipfile.ZipFile(path) as bundle:
        assert bundle.testzip() is None
        assert set(bundle.namelist()) == set(names) | MEMBERS
        assert {i.extract_version for i in bundle.infolist()} == {45}
        for name in [*names, "manifest.xml", "manifest.sig"]:
            assert bundle.read(name) == (directory / name).read_bytes()
    assert set(zipinfo_versions(path).values()) == {"4.5"}
    listing = unzip_test(path)
    for name in [*names, "manifest.xml", "manifest.sig"]:
        assert f"testing: {name}" in listing
        assert unzip_member(path, name) == (directory / name).read_bytes()
        assert bsdtar_stream(path, name) == (directory / name).read_bytes()
    # ranges: across the first header and file, the central directory and the ZIP64 end
    for first, last in ((0, 99), (20, 70_000), (len(whole) - 2000, len(whole) - 1)):
        part = await get_bundle(client, export_id, Range=f"bytes={first}-{last}")
        assert part.status == 206
        assert part.headers["Content-Range"] == f"bytes {first}-{last}/{len(whole)}"
        assert bytes(await part.read()) == whole[first:last + 1]
    tail = await get_bundle(client, export_id, Range="bytes=-98")  # ZIP64 end, locator, end
    assert bytes(await tail.read()) == whole[-98:]
