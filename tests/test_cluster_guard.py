"""A site's trust between servers: a proof is accepted only by the server it names,
every server signs with the one site key, and a manifest is served at every moment after
COMPLETED, even before this server has written its copy.

Two real ``sense-plugin serve`` processes on one real PostgreSQL: A (1001) holds the Steady
camera, B (1002) the Big camera; an export of both runs one job on each.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from lxml import etree

from sense_plugin.cluster.signing import HEADER, sign
from sense_plugin.export.verify import verify_directory
from sense_plugin.signing import load_public_key
from sense_plugin.testing.postgres import PgServer, running_pg
from sense_plugin.testing.serverprocess import ServerProcess
from sense_plugin.testing.siteservers import SECRET, start_server, stop_site
from sense_plugin.timestamps import format_timestamp
from tests.apiclient import export_body

A_ID, B_ID = 1001, 1002
STEADY_ID, BIG_ID = 100100, 100200


@dataclass
class Site:
    servers: dict[int, ServerProcess]
    roots: dict[int, Path]
    export_id: str
    pg: PgServer


def call(server: ServerProcess, query: dict[str, Any] | None = None, *, path: str = "",
         body: str | None = None, headers: dict[str, str] | None = None
         ) -> tuple[int, bytes]:
    target = path or "/command?" + urlencode(query or {}, quote_via=quote)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("POST" if body else "GET", target, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def manifests(site: Site) -> dict[int, Path]:
    return {i: site.roots[i] / "unnamed" / site.export_id / "manifest.xml" for i in site.roots}


@pytest.fixture(scope="module")
def site(api_archive: dict[str, Any], big_archive: tuple[Path, int],
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    pytest.importorskip("psycopg", reason="needs psycopg (the cluster extra)")
    pytest.importorskip("procrastinate", reason="needs procrastinate (the cluster extra)")
    root = tmp_path_factory.mktemp("guard-site")
    devices: dict[int, dict[int, Path | None]] = {
        A_ID: {STEADY_ID: api_archive["dirs"]["Steady"]}, B_ID: {BIG_ID: big_archive[0]}}
    servers: dict[int, ServerProcess] = {}
    with running_pg() as pg:
        try:
            for server_id, own in devices.items():
                servers[server_id] = start_server(root, server_id, pg.url, devices=own,
                                                  node_timeout_s=30.0)
            steady_us, big_us = api_archive["start_us"], big_archive[1]
            body = export_body([(STEADY_ID, format_timestamp(steady_us + 2_000_000),
                                 format_timestamp(steady_us + 5_000_000)),
                                (BIG_ID, format_timestamp(big_us),
                                 format_timestamp(big_us + 3_000_000))])
            _status, answer = call(servers[A_ID], {"command": "exportVideo"}, body=body)
            export_id = etree.fromstring(answer).findtext("exportid")
            assert export_id, answer
            deadline = time.monotonic() + 90
            while etree.fromstring(call(servers[A_ID], {
                    "command": "getExportVideoStatus", "exportid": export_id})[1]).findtext(
                    "exports/export/status") != "COMPLETED":
                assert time.monotonic() < deadline
                time.sleep(0.1)
            roots = {i: root / f"data-{i}" / "exports" for i in servers}
            made = Site(servers, roots, export_id, pg)
            while not all(p.exists() for p in manifests(made).values()):  # the copy: ≤ 1 s
                assert time.monotonic() < deadline
                time.sleep(0.1)
            yield made
        finally:
            stop_site(servers.values())


def test_a_proof_made_for_another_server_is_refused(site: Site) -> None:
    a, b = site.servers[A_ID], site.servers[B_ID]
    path = "/cluster/ping"
    for_b = f"127.0.0.1:{b.port}"
    # Sent to A with B's Host: the proof is good for B, and A must not take it.
    status, body = call(a, path=path, headers={"Host": for_b,
                                               HEADER: sign(SECRET, "GET", for_b, path)})
    assert status == 401, body
    assert "wrong proof" in (etree.fromstring(body).findtext("description") or "")
    status, body = call(b, path=path, headers={HEADER: sign(SECRET, "GET", for_b, path)})
    assert status == 200 and etree.fromstring(body).findtext("pong/serverid") == str(B_ID)


def signing_key(server: ServerProcess) -> str:
    _status, body = call(server, {"command": "getServerOptions"})
    return etree.fromstring(body).findtext("serveroptions/signingkey") or ""


def test_every_server_signs_with_the_one_site_key(site: Site) -> None:
    keys = {i: signing_key(s) for i, s in site.servers.items()}
    assert keys[A_ID] and keys[A_ID] == keys[B_ID]
    key = load_public_key(keys[B_ID].encode())
    for server_id, manifest in manifests(site).items():  # the finisher's and the copy
        report = verify_directory(manifest.parent, key)
        assert report.signature_ok, (server_id, report.lines())


def finisher(site: Site) -> int:
    import psycopg

    with psycopg.connect(site.pg.url) as conn:
        row = conn.execute("SELECT finisher FROM sense_exports WHERE export_id = %s",
                           (int(site.export_id),)).fetchone()
    assert row is not None and row[0] is not None
    return int(row[0])


def test_the_manifest_is_served_before_this_servers_copy_is_written(site: Site) -> None:
    finished_by = finisher(site)
    other = B_ID if finished_by == A_ID else A_ID
    copy = manifests(site)[other]
    # The moment after COMPLETED, before the other server's upkeep wrote its copy.
    copy.unlink()
    (copy.parent / "manifest.sig").unlink()
    for name in ("manifest.xml", "manifest.sig"):
        status, body = call(site.servers[other], {
            "command": "downloadExportVideo", "exportid": site.export_id, "file": name})
        assert status == 200, body
        assert body == (manifests(site)[finished_by].parent / name).read_bytes(), body[:300]
