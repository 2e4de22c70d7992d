"""Downloads from any server of a site (docs/site.rst): relayed from the holder or read from
shared disk.

Three real ``sense-plugin serve`` processes on one real PostgreSQL: A (1001) holds the archive
and made the export; B (1002) relays A's files; C (1003) reads them from the export root it
shares with A (``shared_export_root``). Users are configured alike on all three. Until the
site's job store lands, B and C do not know A's exports: the client names the holder with
the ``serverid`` parameter of downloadExportVideo, which is the path the store will take too.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import os
import signal
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from lxml import etree

from sense_plugin.api.site.relay import holding_server
from sense_plugin.cluster.signing import HEADER, sign
from sense_plugin.export.model import Export, Job, Status
from sense_plugin.filemodel import FileInfo
from sense_plugin.passwords import hash_password
from sense_plugin.testing.postgres import running_pg
from sense_plugin.testing.serverprocess import ServerProcess
from sense_plugin.testing.siteservers import SECRET, start_server, stop_site
from sense_plugin.timestamps import format_timestamp
from tests.apiclient import export_body

A_ID, B_ID, C_ID = 1001, 1002, 1003
STEADY_ID, BIG_ID = 100100, 100101
USERS = {"alice": ("alice-pw", ["view", "export"]), "bob": ("bob-pw", ["view"])}
Answer = tuple[int, http.client.HTTPMessage, bytes]


@dataclass
class Site:
    a: ServerProcess
    b: ServerProcess
    c: ServerProcess
    export_id: str
    #: file name → (sha256, bytes on disk)
    files: dict[str, tuple[str, bytes]]
    manifest: bytes

    def name(self, device: str) -> str:
        return next(n for n in self.files if n.startswith(device))


def call(server: ServerProcess, path: str, *, user: str | None = "alice", method: str = "GET",
         body: str | None = None, headers: dict[str, str] | None = None) -> Answer:
    """One HTTP request (Basic credentials of ``user``); status, headers, body."""
    sent = dict(headers or {})
    if user is not None:
        token = base64.b64encode(f"{user}:{USERS[user][0]}".encode()).decode()
        sent["Authorization"] = f"Basic {token}"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    try:
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def download(server: ServerProcess, site: Site, name: str, *, serverid: int | None = A_ID,
             user: str = "alice", method: str = "GET", **headers: str) -> Answer:
    query = {"command": "downloadExportVideo", "exportid": site.export_id, "file": name}
    if serverid is not None:
        query["serverid"] = str(serverid)
    return call(server, "/command?" + urlencode(query, quote_via=quote), user=user,
                method=method, headers={k.replace("_", "-"): v for k, v in headers.items()})


def error_of(answer: Answer) -> tuple[str, str]:
    status, _headers, body = answer
    assert status == 200, (status, body[:300])
    root = etree.fromstring(body)
    return root.get("errorcode") or "", root.findtext("description") or ""


def auth_tables() -> list[str]:
    """``[export]`` and ``[auth]`` of every server: the same users, a long write timeout."""
    lines = ["[export]", "download_write_timeout_s = 120", "[auth]", "enabled = true"]
    for user, (password, permissions) in USERS.items():
        lines += ["[[auth.users]]", f'name = "{user}"',
                  f'password_hash = "{hash_password(password, (2**10, 8, 1))}"',
                  f"permissions = {permissions}"]
    return lines


def start(root: Path, server_id: int, database_url: str, exports: Path,
          devices: dict[int, Path | None], *, shared: bool = False) -> ServerProcess:
    """A started server of the relay site exporting to ``exports`` (``shared`` with others)."""
    return start_server(root, server_id, database_url, node_timeout_s=2.0, devices=devices,
                        server_keys=[f'export_roots = ["{exports}"]'],
                        cluster_keys=[f"shared_export_root = {str(shared).lower()}"],
                        tables=auth_tables())


def make_export(a: ServerProcess, *devices: tuple[int, int, int]) -> str:
    """Export (deviceid, start_us, end_us) ranges on ``a``; its id once COMPLETED."""
    body = export_body([(d, format_timestamp(s), format_timestamp(e)) for d, s, e in devices])
    status, _h, answer = call(a, "/command?command=exportVideo", method="POST", body=body)
    export_id = etree.fromstring(answer).findtext("exportid")
    assert status == 200 and export_id, answer
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _s, _h, answer = call(a, f"/command?command=getExportVideoStatus&exportid={export_id}")
        if etree.fromstring(answer).findtext("exports/export/status") == "COMPLETED":
            return export_id
        time.sleep(0.1)
    raise AssertionError(answer)


@pytest.fixture(scope="module")
def site(api_archive: dict[str, Any], big_archive: tuple[Path, int],
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    pytest.importorskip("psycopg", reason="needs psycopg (the cluster extra)")
    pytest.importorskip("procrastinate", reason="needs procrastinate (the cluster extra)")
    root = tmp_path_factory.mktemp("relay-site")
    shared, own = root / "shared-exports", root / "b-exports"
    servers: list[ServerProcess] = []
    with running_pg() as pg:
        try:
            devices = {STEADY_ID: api_archive["dirs"]["Steady"], BIG_ID: big_archive[0]}
            servers.append(start(root, A_ID, pg.url, shared, devices))
            servers.append(start(root, B_ID, pg.url, own, {B_ID * 100: None}))
            servers.append(start(root, C_ID, pg.url, shared, {C_ID * 100: None}, shared=True))
            steady_us, big_us = api_archive["start_us"], big_archive[1]
            export_id = make_export(servers[0], (STEADY_ID, steady_us + 2_000_000,
                                                 steady_us + 12_000_000),
                                    (BIG_ID, big_us, big_us + 11_000_000))
            directory = shared / "unnamed" / export_id
            files = {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.read_bytes())
                     for p in directory.glob("*.mp4")}
            assert len(files) == 2, list(directory.iterdir())
            yield Site(*servers, export_id, files, (directory / "manifest.xml").read_bytes())
        finally:
            stop_site(servers)


VALIDATORS = ("Content-Type", "Content-Disposition", "ETag", "Accept-Ranges", "Content-Length",
              "Last-Modified")


def test_relay_answers_exactly_like_the_holder(site: Site) -> None:
    name = site.name("Cam100100")
    sha, data = site.files[name]
    size = len(data)
    for server, serverid in ((site.a, None), (site.b, A_ID)):  # A direct, then B's relay
        status, headers, body = download(server, site, name, serverid=serverid)
        assert status == 200 and body == data and hashlib.sha256(body).hexdigest() == sha
        assert headers["ETag"] == f'"{sha}"' and headers["Content-Type"] == "video/mp4"
        assert headers["Content-Disposition"] == f'attachment; filename="{name}"'
    direct = download(site.a, site, name, serverid=None)[1]
    relayed = download(site.b, site, name)[1]
    assert {h: relayed[h] for h in VALIDATORS} == {h: direct[h] for h in VALIDATORS}
    for header, (first, last) in {"bytes=0-99": (0, 99), "bytes=100-": (100, size - 1),
                                  "bytes=-50": (size - 50, size - 1)}.items():
        status, headers, body = download(site.b, site, name, Range=header)
        assert status == 206, header
        assert headers["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert body == data[first:last + 1]
    status, _h, body = download(site.b, site, name, Range="bytes=5-", If_Range=f'"{sha}"')
    assert status == 206 and body == data[5:]
    status, _h, body = download(site.b, site, name, Range="bytes=5-", If_Range='"0000"')
    assert status == 200 and body == data  # a stale validator: the whole, current file
    status, headers, body = download(site.b, site, name, If_None_Match=f'"{sha}"')
    assert (status, body, headers["ETag"]) == (304, b"", f'"{sha}"')


def test_relay_head_416_chunks_and_manifest(site: Site) -> None:
    name = site.name("Cam100100")
    _sha, data = site.files[name]
    status, headers, body = download(site.b, site, name, method="HEAD")
    get_headers = download(site.b, site, name)[1]
    assert status == 200 and body == b""
    assert {h: headers[h] for h in VALIDATORS} == {h: get_headers[h] for h in VALIDATORS}
    status, headers, _b = download(site.b, site, name, method="HEAD", Range="bytes=0-9")
    assert status == 206 and headers["Content-Length"] == "10"
    for bad in (f"bytes={len(data)}-", "bytes=500-100", "bytes=abc"):
        status, headers, body = download(site.b, site, name, Range=bad)
        assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}", bad
        root = etree.fromstring(body)
        assert root.get("errorcode") == "-22" and "Range" in (root.findtext("description") or "")
    query = urlencode({"command": "downloadExportVideo", "exportid": site.export_id,
                       "file": name, "serverid": A_ID, "chunk_size_kb": 4,
                       "start_from_chunk_index": 1})
    status, headers, body = call(site.b, f"/command?{query}")
    assert status == 200 and body == data[4096:8192]
    assert headers["X-Chunk-Count"] == str(-(-len(data) // 4096))
    status, _h, body = download(site.b, site, "manifest.xml")
    assert status == 200 and body == site.manifest


def test_relay_keeps_permissions_and_names_the_holder(site: Site) -> None:
    name = site.name("Cam100100")
    code, text = error_of(download(site.b, site, name, user="bob"))  # not bob's export
    assert code == "-57" and f"server {A_ID}" in text
    code, text = error_of(download(site.b, site, "other.mp4"))
    assert code == "-1006" and f"server {A_ID}" in text and "no file 'other.mp4'" in text
    code, text = error_of(download(site.b, site, "../manifest.xml"))
    assert code == "-1004"
    code, text = error_of(download(site.b, site, name, serverid=4242))
    assert code == "-17" and "4242" in text
    # the site's job store: B knows A's export and finds the holder itself
    status, _headers, body = download(site.b, site, name, serverid=None)
    assert status == 200 and body == site.files[name][1]
    assert error_of(download(site.b, site, name, serverid=None, user="bob"))[0] == "-57"


def signed(server: ServerProcess, path: str, secret: str = SECRET,
           host: str | None = None) -> dict[str, str]:
    return {HEADER: sign(secret, "GET", host or f"127.0.0.1:{server.port}", path)}


def test_internal_route_needs_a_valid_fresh_proof(site: Site) -> None:
    name = site.name("Cam100100")
    _sha, data = site.files[name]
    path = f"/cluster/files/{site.export_id}/{quote(name)}?user=alice&admin=0"
    good = signed(site.a, path)
    status, headers, body = call(site.a, path, user=None, headers=good)
    assert status == 200 and body == data and headers["X-Sense-Export-Directory"]
    refusals = [
        ("missing X-Sense-Proof", {}),
        ("wrong proof", signed(site.a, path, secret="another-secret-of-32-chars-xxxxx")),
        ("replayed", good),  # the very same header again
        ("wrong proof", signed(site.a, path.replace("admin=0", "admin=1"))),  # another query
        ("wrong proof", signed(site.a, path, host=f"127.0.0.1:{site.b.port}")),  # meant for B
        ("s off", {HEADER: sign(SECRET, "GET", f"127.0.0.1:{site.a.port}", path,
                                now=time.time() - 600)}),  # captured ten minutes ago
    ]
    for reason, headers in refusals:
        status, _h, body = call(site.a, path, user=None, headers=headers)
        assert status == 401, (reason, body)
        root = etree.fromstring(body)
        assert root.get("errorcode") == "-1001", reason
        assert reason in (root.findtext("description") or ""), (reason, body)


def file_requests(server: ServerProcess) -> list[str]:
    """The access-log lines of the internal file route, oldest first."""
    return [line for line in server.log_path.read_text().splitlines()
            if "/cluster/files/" in line]


def test_shared_storage_reads_the_file_from_disk(site: Site) -> None:
    name = site.name("Cam100100")
    sha, data = site.files[name]
    before = len(file_requests(site.a))
    status, headers, body = download(site.c, site, name)
    assert status == 200 and body == data and headers["ETag"] == f'"{sha}"'
    status, headers, body = download(site.c, site, name, Range="bytes=10-19")
    assert status == 206 and body == data[10:20]
    assert headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    status, _h, body = download(site.c, site, name, Range="bytes=5-", If_Range='"0000"')
    assert status == 200 and body == data
    status, _h, body = download(site.c, site, name, method="HEAD")
    assert status == 200 and body == b""
    assert download(site.c, site, "manifest.xml")[2] == site.manifest
    assert error_of(download(site.c, site, name, user="bob"))[0] == "-57"
    time.sleep(0.3)  # A writes its access line when the answer is done
    asked = file_requests(site.a)[before:]  # one byte each: the directory, size and ETag
    assert len(asked) == 6 and all(" 206 errorcode=- 1 B " in line or "errorcode=-57" in line
                                   for line in asked), asked


def stalled(server: ServerProcess, site: Site, name: str) -> socket.socket:
    """A client that asks B for a big file, reads a little and stops reading."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: the window
    sock.settimeout(10)
    sock.connect(("127.0.0.1", server.port))
    token = base64.b64encode(b"alice:alice-pw").decode()
    query = urlencode({"command": "downloadExportVideo", "exportid": site.export_id,
                       "file": name, "serverid": A_ID})
    sock.sendall(f"GET /command?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"Authorization: Basic {token}\r\n\r\n".encode())
    assert sock.recv(1000)
    return sock


def upstream_connections(server: ServerProcess, port: int) -> int:
    """Open TCP connections of ``server``'s process to ``port`` (from /proc)."""
    assert server.proc is not None
    inodes = set()
    for fd in Path(f"/proc/{server.proc.pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                count += 1
    return count


def test_a_client_that_goes_away_closes_the_upstream(site: Site) -> None:
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux /proc/net/tcp to see the upstream connection")
    name = site.name("Cam100101")  # the big file: far more than a stalled client takes
    for reset in (True, False):
        sock = stalled(site.b, site, name)
        assert upstream_connections(site.b, site.a.port) == 1  # B is relaying from A
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        deadline = time.monotonic() + 10  # B's write timeout is 120 s: only the close counts
        while upstream_connections(site.b, site.a.port):
            assert time.monotonic() < deadline, "the upstream connection is still open"
            time.sleep(0.1)
    log = site.b.log_path.read_text()
    assert "incident" not in log and "Traceback" not in log


def test_holding_server_is_the_server_whose_job_wrote_the_file() -> None:
    def job(index: int, server_id: int, name: str) -> Job:
        return Job(1, index, server_id, 7 + index, "cam", 0, 1, status=Status.COMPLETED,
                   file=FileInfo(name, 10, "ab" * 32, 0, 1, 10))

    export = Export(1, "alice", 0, "", "/x", "mp4", "", 0, jobs=[job(0, 5, "a.mp4"),
                                                                 job(1, 6, "b.mp4")])
    assert holding_server(export, "a.mp4", 6) == 5 and holding_server(export, "b.mp4", 5) == 6
    assert holding_server(export, "manifest.xml", 6) == 6  # one of ours: here
    assert holding_server(export, "manifest.xml", 9) == 5  # none of ours: the first job's


def test_a_holder_that_is_down_gives_a_coded_error(site: Site) -> None:
    name = site.name("Cam100100")
    assert site.a.proc is not None
    site.a.proc.send_signal(signal.SIGSTOP)  # connects, never answers
    try:
        code, text = error_of(download(site.b, site, name))  # after node_timeout_s (2 s)
        assert code == "-1006" and f"server {A_ID}" in text and "cannot be reached" in text
    finally:
        site.a.proc.send_signal(signal.SIGCONT)
    time.sleep(1)  # heartbeats again
    site.a.stop(signal.SIGKILL)
    try:
        code, text = error_of(download(site.b, site, name))  # at once: recently seen
        assert code == "-1006" and f"server {A_ID}" in text and "cannot be reached" in text
        time.sleep(2.5)  # past node_timeout_s = 2 s without a heartbeat
        for server in (site.b, site.c):
            code, text = error_of(download(server, site, name))
            assert code == "-1008" and f"server {A_ID}" in text, (code, text)
            assert "node_timeout_s" in text
    finally:
        site.a.start()
    assert download(site.b, site, name)[2] == site.files[name][1]
