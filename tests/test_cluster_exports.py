"""Exports on a site of three servers (docs/site.rst): any server takes the export, each
device job runs on the server holding the device, every server answers the same status and
serves every file.

Three real ``sense-plugin serve`` processes on one real PostgreSQL: A (1001) holds the Steady
camera, B (1002) the Big camera, C (1003) neither. Files are checked with PyAV (every frame
decoded) and SHA-256 against the status and the manifest.
"""

from __future__ import annotations

import hashlib
import http.client
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import av
import pytest
from lxml import etree

from sense_plugin.testing.postgres import PgServer, running_pg
from sense_plugin.testing.serverprocess import ServerProcess
from sense_plugin.testing.siteservers import start_server, stop_site
from sense_plugin.timestamps import format_timestamp
from tests.apiclient import export_body

A_ID, B_ID, C_ID, D_ID = 1001, 1002, 1003, 1004
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
    pg: PgServer


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


@pytest.fixture(scope="module")
def site(api_archive: dict[str, Any], big_archive: tuple[Path, int],
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    pytest.importorskip("psycopg", reason="needs psycopg (the cluster extra)")
    pytest.importorskip("procrastinate", reason="needs procrastinate (the cluster extra)")
    root = tmp_path_factory.mktemp("export-site")
    empty = root / "no-archive"
    empty.mkdir()
    devices: dict[int, dict[int, Path | None]] = {
        A_ID: {STEADY_ID: api_archive["dirs"]["Steady"]}, B_ID: {BIG_ID: big_archive[0]},
        C_ID: {C_ID * 100: empty}, D_ID: {D_ID * 100: big_archive[0]}}
    servers: dict[int, ServerProcess] = {}
    with running_pg() as pg:
        try:
            for server_id, own in devices.items():
                servers[server_id] = start_server(
                    root, server_id, pg.url, devices=own, node_timeout_s=30.0,
                    tables=["[export]", "retention_sweep_s = 0.5"])
            roots = {i: root / f"data-{i}" / "exports" for i in servers}
            yield Site(servers, roots, api_archive["start_us"], big_archive[1], pg)
        finally:
            stop_site(servers.values())


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def file_of(device: etree._Element) -> tuple[str, str]:
    """(name, sha256) of a device's one file in a status answer."""
    return (device.findtext("files/file/name") or "", device.findtext("files/file/sha256") or "")


def checked_file(site: Site, holder: int, export_id: str, device: etree._Element) -> Path:
    """The device's file on its holder, its SHA-256 equal to the status answer's."""
    name, sha = file_of(device)
    on_disk = site.roots[holder] / "unnamed" / export_id / name
    assert hashlib.sha256(on_disk.read_bytes()).hexdigest() == sha
    return on_disk


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
    answers = {i: comparable(wait(site.servers[i], export_id, ("COMPLETED",)))
               for i in (A_ID, B_ID, C_ID)}
    assert answers[A_ID] == answers[B_ID] == answers[C_ID]
    devices = {int(d.findtext("deviceid") or 0): d for d in export.iter("device")}
    for device_id, holder in ((STEADY_ID, A_ID), (BIG_ID, B_ID)):
        on_disk = checked_file(site, holder, export_id, devices[device_id])
        name, sha = file_of(devices[device_id])
        assert decoded_frames(on_disk) > 0
        others = [i for i in (A_ID, B_ID, C_ID) if i != holder]
        assert not any((site.roots[i] / "unnamed" / export_id / name).exists() for i in others)
        for server in (a, b, c):  # downloadable from every server
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
    until_written(c, export_id)
    b.stop(signal.SIGKILL)
    assert status_of(c, export_id).findtext("status") == "SYNCING"  # not COMPLETED: not done
    b.start()
    export = wait(c, export_id, ("COMPLETED", "FAILED"), timeout_s=120)
    assert export.findtext("status") == "COMPLETED", etree.tostring(export)
    device = export.find("devices/device")
    assert device is not None
    on_disk = checked_file(site, B_ID, export_id, device)
    assert decoded_frames(on_disk) == 12 * 25
    assert not list(on_disk.parent.glob("*.part"))


def until_written(server: ServerProcess, export_id: str, timeout_s: float = 30) -> None:
    """Until ``server`` shows that the export's running job has written something (the
    runner saves its figures to the site's database about once a second)."""
    deadline = time.monotonic() + timeout_s
    while int(status_of(server, export_id).findtext("devices/device/bytes") or 0) <= 0:
        assert time.monotonic() < deadline, etree.tostring(status_of(server, export_id))
        time.sleep(0.1)


def running_on_b(site: Site, export_id: str) -> None:
    """Until the Big camera's job runs (and has written something) on B."""
    c = site.servers[C_ID]
    deadline = time.monotonic() + 30
    while status_of(c, export_id).findtext("devices/device/status") != "SYNCING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    until_written(c, export_id)


def act(server: ServerProcess, action: str, export_id: str) -> etree._Element:
    _status, body = call(server, {"command": "exportVideo", "action": action,
                                  "exportid": export_id})
    return etree.fromstring(body)


def test_stop_and_remove_on_a_server_that_does_not_run_the_job(site: Site) -> None:
    a, c = site.servers[A_ID], site.servers[C_ID]
    big = (BIG_ID, site.big_us, site.big_us + 12_000_000)
    stopped = create(c, big, bandwidth=4000)
    running_on_b(site, stopped)
    assert act(a, "stop", stopped).get("errorcode") == "0"
    export = wait(c, stopped, ("COMPLETED", "FAILED", "REMOVED"), timeout_s=40)
    assert export.findtext("status") == "COMPLETED", etree.tostring(export)
    device = export.find("devices/device")
    assert device is not None and device.findtext("stopped") == "true"
    on_disk = checked_file(site, B_ID, stopped, device)
    assert 0 < decoded_frames(on_disk) < 12 * 25  # what was written until the stop

    removed = create(c, big, bandwidth=4000)
    running_on_b(site, removed)
    assert act(a, "remove", removed).get("errorcode") == "0"
    assert wait(c, removed, ("REMOVED",), timeout_s=20).findtext("status") == "REMOVED"
    directory = site.roots[B_ID] / "unnamed" / removed
    deadline = time.monotonic() + 20
    while directory.exists() and list(directory.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not directory.exists() or not list(directory.iterdir())  # B deleted its part


def test_the_database_away_is_a_coded_error_and_a_restart_loses_nothing(site: Site) -> None:
    c = site.servers[C_ID]
    big = (BIG_ID, site.big_us, site.big_us + 12_000_000)
    running = create(c, big, bandwidth=4000)
    running_on_b(site, running)
    site.pg.stop("fast")
    try:
        started = time.monotonic()
        body = export_body([(BIG_ID, format_timestamp(big[1]), format_timestamp(big[2]))])
        _status, answer = call(c, {"command": "exportVideo"}, body)
        refused = etree.fromstring(answer)
        assert refused.get("errorcode") == "-1006", answer
        assert "PostgreSQL" in (refused.findtext("description") or "")
        assert time.monotonic() - started < 10  # an answer, never a hang
        time.sleep(2.0)
    finally:
        site.pg.start()
    export = wait(c, running, ("COMPLETED", "FAILED"), timeout_s=90)
    assert export.findtext("status") == "COMPLETED", etree.tostring(export)
    device = export.find("devices/device")
    assert device is not None
    on_disk = checked_file(site, B_ID, running, device)
    assert decoded_frames(on_disk) == 12 * 25


def test_jobs_of_a_server_away_past_node_timeout_fail_with_1008(site: Site) -> None:
    import psycopg

    c, d = site.servers[C_ID], site.servers[D_ID]
    d.stop()  # a graceful stop: it is away, its devices are still the site's
    export_id = create(c, (D_ID * 100, site.big_us, site.big_us + 4_000_000))
    assert status_of(c, export_id).findtext("status") == "PENDING"  # it waits for D
    with psycopg.connect(site.pg.url, autocommit=True) as conn:  # away for an hour
        conn.execute("UPDATE sense_nodes SET last_seen = now() - interval '1 hour' "
                     "WHERE serverid = %s", (D_ID,))
    export = wait(c, export_id, ("FAILED",), timeout_s=20)
    device = export.find("devices/device")
    assert device is not None and device.findtext("errorcode") == "-1008"
    assert f"server {D_ID}" in (device.findtext("description") or "")


def held_files(site: Site, export_id: str) -> dict[int, list[str]]:
    """What each server has in the export's directory."""
    return {i: sorted(p.name for p in (root / "unnamed" / export_id).glob("*"))
            for i, root in site.roots.items()}


def holdings(site: Site, export_id: str) -> list[int]:
    import psycopg

    with psycopg.connect(site.pg.url, autocommit=True) as conn:
        rows = conn.execute("SELECT serverid FROM sense_holdings WHERE export_id = %s "
                            "ORDER BY 1", (int(export_id),)).fetchall()
    return [int(row[0]) for row in rows]


def finished_on_a_and_b(site: Site) -> str:
    """A two-device export made on C, COMPLETED, with files and manifests on A and B."""
    c = site.servers[C_ID]
    export_id = create(c, (STEADY_ID, site.steady_us + 2_000_000, site.steady_us + 5_000_000),
                       (BIG_ID, site.big_us, site.big_us + 3_000_000))
    assert wait(c, export_id, ("COMPLETED", "FAILED")).findtext("status") == "COMPLETED"
    deadline = time.monotonic() + 10
    while not all("manifest.xml" in held_files(site, export_id)[i] for i in (A_ID, B_ID)):
        assert time.monotonic() < deadline, held_files(site, export_id)
        time.sleep(0.1)
    return export_id


def until_no_server_holds(site: Site, export_id: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while any(held_files(site, export_id).values()) or holdings(site, export_id):
        assert time.monotonic() < deadline, (held_files(site, export_id),
                                             holdings(site, export_id))
        time.sleep(0.2)


def test_a_finished_export_removed_on_one_server_is_deleted_on_every_server(
        site: Site) -> None:
    export_id = finished_on_a_and_b(site)
    held = held_files(site, export_id)
    assert len(held[A_ID]) >= 3 and len(held[B_ID]) >= 3  # a file, manifest.xml, .sig
    assert set(holdings(site, export_id)) >= {A_ID, B_ID, C_ID}  # C took it
    assert act(site.servers[A_ID], "remove", export_id).get("errorcode") == "0"
    until_no_server_holds(site, export_id)  # B's file and manifest too, not only A's
    for server_id in (A_ID, B_ID, C_ID):
        assert status_of(site.servers[server_id], export_id).findtext("status") == "REMOVED"


def test_an_export_expired_by_one_server_is_deleted_on_every_server(site: Site) -> None:
    import psycopg

    export_id = finished_on_a_and_b(site)
    with psycopg.connect(site.pg.url, autocommit=True) as conn:  # its retention is over
        conn.execute("UPDATE sense_exports SET expires_us = 1 WHERE export_id = %s",
                     (int(export_id),))
    until_no_server_holds(site, export_id)  # whichever server's sweep expired it
    assert wait(site.servers[C_ID], export_id, ("EXPIRED",)).findtext("status") == "EXPIRED"


def test_keepalive_counts_the_requests_of_every_server(site: Site) -> None:
    """Polled only on A, an export taken by C and run by B is kept; forgotten, it stops."""
    a = site.servers[A_ID]
    export_id = create(site.servers[C_ID], (BIG_ID, site.big_us, site.big_us + 12_000_000),
                       bandwidth=3000, keepalive=5)
    running_on_b(site, export_id)
    polled_until = time.monotonic() + 10  # twice the keepalive, asked only on A
    while time.monotonic() < polled_until:
        export = status_of(a, export_id)
        assert export.findtext("status") == "SYNCING", etree.tostring(export)
        time.sleep(0.3)
    time.sleep(9)  # nobody asks: B or C stops it about 5 s after A's last request
    export = status_of(a, export_id)
    assert export.findtext("status") == "COMPLETED", etree.tostring(export)
    device = export.find("devices/device")
    assert device is not None and device.findtext("stopped") == "true"
    on_disk = checked_file(site, B_ID, export_id, device)
    assert 0 < decoded_frames(on_disk) < 12 * 25
