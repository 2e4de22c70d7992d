"""Exports on a site of three servers (SPEC §13, issue 17): any server takes the export, each
device job runs on the server holding the device, every server answers the same status and
serves every file.

Three real ``sense-plugin serve`` processes on one real PostgreSQL: A (1001) holds the Steady
camera, B (1002) the Big camera, C (1003) neither. Files are checked with PyAV (every frame
decoded) and SHA-256 against the status and the manifest.
"""

from __future__ import annotations

import hashlib
import http.client
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import av
import pytest
from lxml import etree

from sense_plugin.timestamps import format_timestamp
from tests.apiclient import export_body
from tests.clustersite import SECRET
from tests.pgserver import PgServer
from tests.serverproc import ServerProcess

A_ID, B_ID, C_ID = 1001, 1002, 1003
STEADY_ID, BIG_ID = 100100, 100200
#: What a status answer shows of a device that another server may legitimately differ in
#: while nothing runs: nothing (the same document from every server).
CHANGING = ("bandwidth",)


@dataclass
class Site:
    servers: dict[int, ServerProcess]
    roots: dict[int, Path]
    steady_us: int
    big_us: int


def call(server: ServerProcess, query: dict[str, Any], body: str | None = None
         ) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("POST" if body else "GET", "/command?" + urlencode(query, quote_via=quote),
                     body=body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def status_of(server: ServerProcess, export_id: str) -> etree._Element:
    _status, body = call(server, {"command": "getExportVideoStatus", "exportid": export_id})
    root = etree.fromstring(body)
    assert root.get("errorcode") == "0", body[:400]
    export = root.find("exports/export")
    assert export is not None
    return export


def wait(server: ServerProcess, export_id: str, until: tuple[str, ...],
         timeout_s: float = 90) -> etree._Element:
    deadline = time.monotonic() + timeout_s
    while True:
        export = status_of(server, export_id)
        if export.findtext("status") in until:
            return export
        assert time.monotonic() < deadline, etree.tostring(export)
        time.sleep(0.1)


def create(server: ServerProcess, *devices: tuple[int, int, int], **fields: Any) -> str:
    body = export_body([(d, format_timestamp(s), format_timestamp(e)) for d, s, e in devices],
                       **fields)
    _status, answer = call(server, {"command": "exportVideo"}, body)
    export_id = etree.fromstring(answer).findtext("exportid")
    assert export_id, answer
    return export_id


def server_toml(server: ServerProcess, root: Path, server_id: int, database_url: str,
                devices: dict[int, Path]) -> str:
    lines = ["[server]", f'serverid = "{server_id}"', f'name = "Recorder {server_id}"',
             f'data_dir = "{root / f"data-{server_id}"}"', "[archive]", "demo = false",
             "[cluster]", f'database_url = "{database_url}"', f'node_url = "{server.url}"',
             f'site_secret = "{SECRET}"', "heartbeat_s = 0.5", "node_timeout_s = 30.0"]
    for device_id, archive in devices.items():
        lines += ["[[devices]]", f'deviceid = "{device_id}"', f'name = "Cam{device_id}"',
                  f'archive_dir = "{archive}"']
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def site(api_archive: dict[str, Any], big_archive: tuple[Path, int],
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    pytest.importorskip("psycopg", reason="needs psycopg (the cluster extra)")
    pytest.importorskip("procrastinate", reason="needs procrastinate (the cluster extra)")
    pg_root = Path(tempfile.mkdtemp(prefix="sense-pg-"))
    pg = PgServer(pg_root)
    pg.create()
    root = tmp_path_factory.mktemp("export-site")
    empty = root / "no-archive"
    empty.mkdir()
    devices = {A_ID: {STEADY_ID: api_archive["dirs"]["Steady"]}, B_ID: {BIG_ID: big_archive[0]},
               C_ID: {C_ID * 100: empty}}
    servers: dict[int, ServerProcess] = {}
    try:
        for server_id, own in devices.items():
            config = root / f"server-{server_id}.toml"
            server = ServerProcess(config, root / f"server-{server_id}.log")
            config.write_text(server_toml(server, root, server_id, pg.url, own))
            server.start()
            servers[server_id] = server
        roots = {i: root / f"data-{i}" / "exports" for i in servers}
        yield Site(servers, roots, api_archive["start_us"], big_archive[1])
    finally:
        for server in servers.values():
            if server.proc is not None and server.proc.poll() is None:
                server.stop()
        pg.stop("immediate")
        shutil.rmtree(pg_root, ignore_errors=True)


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def file_of(device: etree._Element) -> tuple[str, str]:
    """(name, sha256) of a device's one file in a status answer."""
    return (device.findtext("files/file/name") or "", device.findtext("files/file/sha256") or "")


def comparable(export: etree._Element) -> bytes:
    for tag in CHANGING:
        for element in export.iter(tag):
            element.text = ""
    return etree.tostring(export)


def test_an_export_made_on_a_third_server_runs_where_the_devices_are(site: Site) -> None:
    a, b, c = (site.servers[i] for i in (A_ID, B_ID, C_ID))
    export_id = create(c, (STEADY_ID, site.steady_us + 2_000_000, site.steady_us + 8_000_000),
                       (BIG_ID, site.big_us, site.big_us + 6_000_000))
    export = wait(c, export_id, ("COMPLETED", "FAILED"))
    assert export.findtext("status") == "COMPLETED", etree.tostring(export)
    answers = {i: comparable(wait(s, export_id, ("COMPLETED",))) for i, s in site.servers.items()}
    assert answers[A_ID] == answers[B_ID] == answers[C_ID]
    devices = {int(d.findtext("deviceid") or 0): d for d in export.iter("device")}
    for device_id, holder in ((STEADY_ID, A_ID), (BIG_ID, B_ID)):
        name, shown_sha = file_of(devices[device_id])
        on_disk = site.roots[holder] / "unnamed" / export_id / name
        data = on_disk.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        assert sha == shown_sha
        assert decoded_frames(on_disk) > 0
        others = [i for i in site.servers if i != holder]
        assert not any((site.roots[i] / "unnamed" / export_id / name).exists() for i in others)
        for server in site.servers.values():  # downloadable from every server
            status, body = call(server, {"command": "downloadExportVideo",
                                         "exportid": export_id, "file": name})
            assert status == 200 and hashlib.sha256(body).hexdigest() == sha
    for holder in (A_ID, B_ID):  # each holder has the manifest beside its files
        deadline = time.monotonic() + 10
        manifest = site.roots[holder] / "unnamed" / export_id / "manifest.xml"
        while not manifest.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        shown = {f.findtext("name"): f.findtext("sha256")
                 for f in etree.fromstring(manifest.read_bytes()).iter("file")}
        for device in devices.values():
            name, sha = file_of(device)
            assert shown.get(name) == sha


def test_a_server_killed_mid_export_runs_its_job_again_when_it_is_back(site: Site) -> None:
    b, c = site.servers[B_ID], site.servers[C_ID]
    export_id = create(c, (BIG_ID, site.big_us, site.big_us + 12_000_000), bandwidth=4000)
    wait(c, export_id, ("SYNCING",))
    deadline = time.monotonic() + 30
    while status_of(c, export_id).findtext("devices/device/status") != "SYNCING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.0)  # some bytes written
    b.stop(signal.SIGKILL)
    assert status_of(c, export_id).findtext("status") == "SYNCING"  # not COMPLETED: not done
    b.start()
    export = wait(c, export_id, ("COMPLETED", "FAILED"), timeout_s=120)
    assert export.findtext("status") == "COMPLETED", etree.tostring(export)
    device = export.find("devices/device")
    assert device is not None
    name, sha = file_of(device)
    on_disk = site.roots[B_ID] / "unnamed" / export_id / name
    assert hashlib.sha256(on_disk.read_bytes()).hexdigest() == sha
    assert decoded_frames(on_disk) == 12 * 25
    assert not list(on_disk.parent.glob("*.part"))
