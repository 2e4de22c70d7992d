"""Availability of the real ``sense-plugin serve``: descriptors, idle and slow clients,
malformed HTTP, log floods, and the headers every answer carries."""

from __future__ import annotations

import base64
import resource
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lxml import etree

from sense_plugin.passwords import hash_password
from sense_plugin.testing.serverprocess import ServerProcess

#: The server's hard open-files limit in these tests (its soft limit starts lower still).
HARD_FDS = 256
SOFT_FDS = 64
PASSWORD = "op-Secret 1"
BASIC = "Basic " + base64.b64encode(f"operator:{PASSWORD}".encode()).decode()


class LimitedServer(ServerProcess):
    """``sense-plugin serve`` started with a low open-files limit (soft 64, hard 256)."""

    def start(self, timeout_s: float = 60.0,
              preexec_fn: Callable[[], None] | None = None) -> None:
        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (SOFT_FDS, HARD_FDS))

        super().start(timeout_s, preexec_fn=limit)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LimitedServer]:
    tmp = tmp_path_factory.mktemp("limited")
    (tmp / "sense.toml").write_text(f"""
[server]
serverid = "7015498111931795223"
data_dir = "data"
[http]
idle_timeout_s = 2
body_timeout_s = 2
[auth]
enabled = true
[[auth.users]]
name = "operator"
password_hash = "{hash_password(PASSWORD)}"
permissions = ["view", "export"]
[archive]
demo = false
[[devices]]
deviceid = "9890179877273119875"
name = "Entrance"
""")
    proc = LimitedServer(tmp / "sense.toml", tmp / "server.log")
    proc.start()
    yield proc
    assert proc.stop() == 0


def request(server: ServerProcess, path: str, headers: dict[str, str] | None = None,
            timeout_s: float = 10) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(server.url + path, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def raw(server: ServerProcess, data: bytes, timeout_s: float = 10) -> bytes:
    """Send raw bytes, read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout_s) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def open_idle(server: ServerProcess, count: int) -> list[socket.socket]:
    sockets = []
    for i in range(count):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        if i % 2:
            sock.sendall(b"GET /info HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        sockets.append(sock)
    return sockets


def test_more_idle_connections_than_descriptors(server: LimitedServer) -> None:
    log_before = server.log_path.stat().st_size
    sockets = open_idle(server, 2 * HARD_FDS)
    try:
        assert server.proc is not None
        assert len(list(Path(f"/proc/{server.proc.pid}/fd").iterdir())) < HARD_FDS - 32
        for _ in range(3):
            status, _, body = request(server, "/info")
            assert status == 200 and b"<apiinfo>" in body
            status, _, body = request(server, "/command?command=getDeviceList",
                                      headers={"Authorization": BASIC})
            assert status == 200 and b'errorcode="0"' in body and b"Entrance" in body
    finally:
        for sock in sockets:
            sock.close()
    log = server.log_path.read_bytes()[log_before:]
    assert b"Errno 24" not in log and b"Too many open files" not in log
    assert b"Traceback" not in log
    assert len(log) < 20_000, log[-2000:].decode("utf-8", "replace")
    assert log.count(b"connection limit") <= 2  # once per interval, not once per connection


def test_soft_limit_raised_and_connections_capped(server: LimitedServer) -> None:
    assert server.proc is not None
    limits = Path(f"/proc/{server.proc.pid}/limits").read_text()
    line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
    assert line.split()[3:5] == [str(HARD_FDS), str(HARD_FDS)], line
    assert b"accepting up to 128 connections" in server.log_path.read_bytes()


def test_idle_and_slow_clients_are_disconnected(server: LimitedServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /info HTTP/1.1\r\nHost: x\r\n")  # slow headers, never finished
        started = time.monotonic()
        assert sock.recv(1024) == b""  # closed by the server (idle timeout 2 s), no answer
        assert time.monotonic() - started < 8
    body_start = (b"POST /webservice HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
                  b"Content-Length: 100\r\n\r\n<AuthenticateUser>")
    answer = raw(server, body_start)  # the body never completes
    assert b'errorcode="-22"' in answer and b"did not arrive within 2 s" in answer


@pytest.mark.parametrize("data", [
    b"JUNK\r\n\r\n",
    b"GET /info HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40),  # a TLS hello on plain HTTP
])
def test_malformed_http_is_answered_in_xml(server: LimitedServer, data: bytes) -> None:
    answer = raw(server, data)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400", answer[:200]
    assert b"Content-Type: text/xml; charset=utf-8" in head
    assert b"X-Content-Type-Options: nosniff" in head and b"Server: sense_plugin" in head
    root = etree.fromstring(body)
    assert root.get("errorcode") == "-22" and root.findtext("description")
    assert b"Traceback" not in server.log_path.read_bytes()


def test_a_flood_of_malformed_requests_logs_one_line(server: LimitedServer) -> None:
    before = server.log_path.stat().st_size
    for i in range(200):
        raw(server, b"JUNK%d\r\n\r\n" % i)
    logged = server.log_path.read_bytes()[before:]
    assert logged.count(b"malformed") <= 1, logged[:2000]
    assert request(server, "/info")[0] == 200


@pytest.mark.parametrize("path", ["/info", "/command?command=getDeviceList", "/nowhere",
                                  "/web/", "/command?command=downloadExportVideo&exportid=1"])
def test_security_headers_and_no_version_banner(server: LimitedServer, path: str) -> None:
    status, headers, body = request(server, path, headers={"Authorization": BASIC})
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Server"] == "sense_plugin"
    assert "Python" not in str(headers) and "aiohttp" not in str(headers)
    if path != "/web/":
        assert headers["Content-Type"] == "text/xml; charset=utf-8", (status, body[:100])
        assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')


def test_http_errors_of_the_server_are_xml(server: LimitedServer) -> None:
    status, headers, body = request(server, "/nowhere")
    assert status == 404 and b'errorcode="-1"' in body and b"no such resource" in body
    req = urllib.request.Request(server.url + "/info", method="DELETE")
    try:
        urllib.request.urlopen(req, timeout=10)
    except urllib.error.HTTPError as exc:
        assert exc.code == 405 and exc.headers["Content-Type"] == "text/xml; charset=utf-8"
        assert b"method DELETE is not allowed for /info" in exc.read()
    else:
        raise AssertionError("DELETE /info was accepted")


def test_a_taken_port_stops_the_start_before_the_data_directory(tmp_path: Path) -> None:
    config = tmp_path / "sense.toml"
    config.write_text('[server]\nserverid = "1"\ndata_dir = "data"\n[archive]\ndemo = true\n')
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "sense_plugin", "serve", "--config", str(config),
             "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()  # no half-made demo archive


def test_tls_serving_and_failed_handshakes(tmp_path: Path) -> None:
    import shutil
    import ssl

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl CLI (apt-get install -y openssl)")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True)
    config = tmp_path / "sense.toml"
    config.write_text('[server]\nserverid = "1"\ndata_dir = "data"\n[archive]\ndemo = false\n'
                      '[http]\ntls_cert = "cert.pem"\ntls_key = "key.pem"\nidle_timeout_s = 2\n')
    proc = ServerProcess(config, tmp_path / "server.log")
    assert proc.proc is None
    with (tmp_path / "out.log").open("wb") as out:
        proc.proc = subprocess.Popen(
            [sys.executable, "-m", "sense_plugin", "serve", "--config", str(config), "--port",
             str(proc.port)], stdout=out, stderr=subprocess.STDOUT)
    context = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    context.check_hostname = False
    url = f"https://127.0.0.1:{proc.port}/info"
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(url, context=context, timeout=5) as response:
                    assert b"<apiinfo>" in response.read()
                    assert response.headers["Server"] == "sense_plugin"
                break
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        else:
            raise AssertionError((tmp_path / "out.log").read_text())
        for _ in range(5):  # plain HTTP on the TLS port: the handshake fails, nothing else does
            raw(proc, b"GET /info HTTP/1.1\r\nHost: x\r\n\r\n")
        with urllib.request.urlopen(url, context=context, timeout=5) as response:
            assert response.status == 200
    finally:
        assert proc.stop() == 0
    assert "Traceback" not in (tmp_path / "out.log").read_text()
