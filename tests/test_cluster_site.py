"""Three ``sense-plugin serve`` processes of one site on one PostgreSQL (docs/site.rst)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
from lxml import etree

from sense_plugin.testing.postgres import PgServer
from sense_plugin.testing.serverprocess import ServerProcess
from sense_plugin.testing.siteservers import BASE_SERVER_ID, SECRET, start_site
from tests.apiclient import schema
from tests.pgserver import pg_server  # noqa: F401  (the fixture)

pytest.importorskip("psycopg", reason="needs psycopg (the cluster extra)")
pytest.importorskip("procrastinate", reason="needs procrastinate (the cluster extra)")

import psycopg  # noqa: E402

from sense_plugin.cluster.client import signed_request  # noqa: E402

IDS = [str(BASE_SERVER_ID + i) for i in range(3)]


def statuses(server: ServerProcess) -> dict[str, str]:
    doc = server.command("getDivaList")
    assert doc.get("errorcode") == "0", etree.tostring(doc)
    assert schema("getDivaList").validate(doc), schema("getDivaList").error_log
    return {d.findtext("divaid") or "": d.findtext("status") or "" for d in doc.iter("diva")}


def seconds_since_heartbeat(pg: PgServer, server_id: str) -> float:
    """The age of a server's last heartbeat, by the site database's clock."""
    with psycopg.connect(pg.url) as conn:
        row = conn.execute("SELECT extract(epoch FROM now() - last_seen) FROM sense_nodes "
                           "WHERE serverid = %s", (int(server_id),)).fetchone()
    assert row is not None
    return float(row[0])


def wait_for(check: object, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_three_servers_list_the_whole_site(pg_server: PgServer, tmp_path: Path) -> None:  # noqa: F811
    servers = start_site(tmp_path, pg_server.url, heartbeat_s=0.5)
    try:
        for server in servers:
            assert statuses(server) == dict.fromkeys(IDS, "online")
            devices = server.command("getDeviceList")
            assert schema("getDeviceList").validate(devices)
            rows = {(d.findtext("serverid"), d.findtext("deviceid"), d.findtext("name"))
                    for d in devices.iter("device")}
            assert rows == {(sid, f"{sid}0{n}", f"Camera {n} of {sid}")
                            for sid in IDS for n in range(2)}
            assert {d.findtext("status") for d in devices.iter("device")} == {"idle"}
        one = servers[0].command(f"getDeviceList&serverid={IDS[2]}")
        assert {d.findtext("serverid") for d in one.iter("device")} == {IDS[2]}
        assert servers[0].command("getDivaList&serverid=42").get("errorcode") == "-17"

        servers[1].stop(signal.SIGKILL)  # a crash: no goodbye, heartbeats just stop
        wait_for(lambda: statuses(servers[2])[IDS[1]] == "offline")
        # judged by the database's clock from the last heartbeat, not from the kill: under
        # load the beats before it may have come late
        silent_s = seconds_since_heartbeat(pg_server, IDS[1])
        assert silent_s >= 3 * 0.5, f"offline {silent_s:.2f} s after its last heartbeat"
        assert statuses(servers[0]) == {IDS[0]: "online", IDS[1]: "offline", IDS[2]: "online"}
        devices = servers[0].command("getDeviceList")
        of_killed = {d.findtext("status") for d in devices.iter("device")
                     if d.findtext("serverid") == IDS[1]}
        assert of_killed == {"offline"} and len(list(devices.iter("device"))) == 6

        servers[1].start()  # back: online again, with the same row
        wait_for(lambda: statuses(servers[0])[IDS[1]] == "online")
        servers[2].stop()  # a graceful stop marks the server offline at once
        assert statuses(servers[0])[IDS[2]] == "offline"
    finally:
        for server in servers:
            if server.proc is not None and server.proc.poll() is None:
                server.stop()


def test_server_to_server_call_carries_proof(pg_server: PgServer, tmp_path: Path) -> None:  # noqa: F811
    import aiohttp

    (server,) = start_site(tmp_path, pg_server.url, count=1)
    try:
        async def calls() -> list[tuple[int, bytes]]:
            async with aiohttp.ClientSession() as session:
                return [await signed_request(session, SECRET, "GET", server.url + "/cluster/ping"),
                        await signed_request(session, "w" * 32, "GET",
                                             server.url + "/cluster/ping")]

        (ok, ok_body), (bad, bad_body) = asyncio.run(calls())
        assert ok == 200 and etree.fromstring(ok_body).findtext("pong/serverid") == IDS[0]
        assert bad == 401 and b"wrong proof" in bad_body
        assert SECRET.encode() not in ok_body
    finally:
        server.stop()
