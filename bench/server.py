"""A real ``sense-plugin serve`` process for the benchmarks, and a small keep-alive client."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from lxml import etree

from bench.archive import CACHE_DIR


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fmt_ts(us: int) -> str:
    """Archive µs → the API's ``YYYY-MM-DD HH:MM:SS.zzz`` (UTC)."""
    secs, micros = divmod(us, 1_000_000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(secs)) + f".{micros // 1000:03d}"


def export_body(ranges: list[tuple[int, int, int]], fmt: str = "mp4") -> str:
    devices = "".join(
        f"<device><deviceid>{dev}</deviceid><starttime>{fmt_ts(lo)}</starttime>"
        f"<endtime>{fmt_ts(hi)}</endtime></device>" for dev, lo, hi in ranges)
    return f"<export><devices>{devices}</devices><format>{fmt}</format></export>"


def session_cpu_s(session_id: int) -> float:
    """User + system CPU seconds of the live processes of a session (the server started with
    ``start_new_session`` and its workers): what the work cost, however busy the machine."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        if int(fields[3]) == session_id:  # field 6 of stat: the session id
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


class Client:
    """One keep-alive HTTP connection to the server."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def command(self, query: str, body: str | None = None) -> etree._Element:
        method = "POST" if body is not None else "GET"
        headers = {"Content-Type": "text/xml"} if body is not None else {}
        for attempt in range(2):
            try:
                self.conn.request(method, f"/command?command={query}",
                                  body=body.encode() if body else None, headers=headers)
                data = self.conn.getresponse().read()
                break
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                if attempt:
                    raise
        root = etree.fromstring(data)
        if root.get("errorcode") != "0":
            raise RuntimeError(f"{query}: {data[:400]!r}")
        return root

    def create(self, ranges: list[tuple[int, int, int]]) -> int:
        root = self.command("exportVideo", export_body(ranges))
        return int(root.findtext("exportid"))

    def status(self, export_id: int) -> etree._Element:
        return self.command(f"getExportVideoStatus&exportid={export_id}")

    def wait(self, export_id: int, poll_s: float = 0.005, timeout_s: float = 600,
             coarse_poll_s: float | None = None, fine_from_percent: int = 85
             ) -> etree._Element:
        """Poll until the export is terminal; raises unless COMPLETED.

        With ``coarse_poll_s``, polls that often until the export's progress reaches
        ``fine_from_percent``, then every ``poll_s``: the end is still seen within ``poll_s``,
        while the observer takes far less CPU from the export on a machine with few cores.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            root = self.status(export_id)
            status = root.findtext("exports/export/status")
            if status == "COMPLETED":
                return root
            if status in ("FAILED", "REMOVED", "EXPIRED"):
                raise RuntimeError(f"export {export_id} {status}: {etree.tostring(root)[:600]!r}")
            progress = int(root.findtext("exports/export/progress") or 0)
            coarse = coarse_poll_s is not None and progress < fine_from_percent
            time.sleep(coarse_poll_s if coarse_poll_s is not None and coarse else poll_s)
        raise TimeoutError(f"export {export_id} not done in {timeout_s} s")

    def remove(self, export_id: int) -> None:
        self.command(f"exportVideo&action=remove&exportid={export_id}")

    def close(self) -> None:
        self.conn.close()


class Server:
    """``sense-plugin serve`` on a free port, logs to bench/cache/server-*.log."""

    def __init__(self, config: Path, data_dir: Path, name: str = "server") -> None:
        self.port = free_port()
        self.log_path = CACHE_DIR / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sense_plugin", "serve", "--config", str(config),
             "--data-dir", str(data_dir), "--port", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 300
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/info")
                if conn.getresponse().status == 200:
                    conn.close()
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start; see {self.log_path}")
            time.sleep(0.1)

    def client(self) -> Client:
        return Client(self.port)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
