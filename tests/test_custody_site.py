"""The chain of custody on a site: one audit chain and one set of holds for every server.

Two real ``sense-plugin serve`` processes on one real PostgreSQL, each with a camera.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from sense_plugin.testing.postgres import running_pg
from sense_plugin.testing.serverprocess import ServerProcess
from sense_plugin.testing.siteservers import start_server, stop_site
from tests.test_cluster_exports import call, create, status_of, wait

A_ID, B_ID = 2001, 2002
CAM_A, CAM_B = 200100, 200200


@pytest.fixture(scope="module")
def pair(api_archive: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[dict[int, ServerProcess]]:
    pytest.importorskip("psycopg", reason="needs psycopg (the cluster extra)")
    pytest.importorskip("procrastinate", reason="needs procrastinate (the cluster extra)")
    root = tmp_path_factory.mktemp("custody-site")
    steady = api_archive["dirs"]["Steady"]
    servers: dict[int, ServerProcess] = {}
    with running_pg() as pg:
        try:
            for server_id, camera in ((A_ID, CAM_A), (B_ID, CAM_B)):
                servers[server_id] = start_server(
                    root, server_id, pg.url, devices={camera: steady},
                    tables=["[export]", "retention_sweep_s = 0.2"])
            yield servers
        finally:
            stop_site(servers.values())


def test_one_audit_chain_and_one_hold_for_the_whole_site(
        pair: dict[int, ServerProcess], api_archive: dict[str, Any], tmp_path: Path) -> None:
    a, b = pair[A_ID], pair[B_ID]
    start = api_archive["start_us"]
    on_a = create(a, (CAM_A, start + 2_000_000, start + 4_000_000))
    on_b = create(b, (CAM_B, start + 2_000_000, start + 4_000_000))
    for export_id in (on_a, on_b):
        wait(a, export_id, ("COMPLETED",))
    _status, answer = call(b, {"command": "exportVideo", "action": "hold", "exportid": on_a})
    assert etree.fromstring(answer).get("errorcode") == "0", answer
    deadline = time.monotonic() + 30
    while status_of(a, on_a).findtext("hold") != "true":  # A reads the site's holds
        assert time.monotonic() < deadline
        time.sleep(0.1)
    _status, answer = call(a, {"command": "exportVideo", "action": "remove", "exportid": on_a})
    assert etree.fromstring(answer).get("errorcode") == "-22", answer
    call(a, {"command": "exportVideo", "action": "release", "exportid": on_a})

    logs = []
    for server in (a, b):
        _status, answer = call(server, {"command": "getAuditLog"})
        logs.append(answer)
    assert logs[0] == logs[1]  # one chain, whichever server answers
    records = etree.fromstring(logs[0]).findall("auditlog/record")
    assert [(r.findtext("action"), r.findtext("exportid")) for r in records] == [
        ("create", on_a), ("create", on_b), ("hold", on_a), ("release", on_a)]
    saved = tmp_path / "site-audit.xml"
    saved.write_bytes(logs[0])
    verified = subprocess.run([sys.executable, "-m", "sense_plugin", "audit-verify", str(saved)],
                              capture_output=True, text=True, check=False)
    assert verified.returncode == 0, verified.stdout
