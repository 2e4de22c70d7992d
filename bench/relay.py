"""``python3 -m bench.relay``: downloads from any server of a site, direct vs relayed vs shared.

One PostgreSQL and three real ``sense-plugin serve`` processes on loopback, set up as in the
relay tests (one user with Basic credentials on every server): A holds a ~20 MB export file;
B relays it from A; C reads it from the export root it shares with A. This process downloads
the file from each (whole file, read to the end; the median of ``--rounds``), and the first
byte (``Range: bytes=0-0``, p50 and p99 of ``--probes``), saved to
``bench/results/relay.{txt,json}``. The client, the three servers and PostgreSQL share this
machine's cores, so the figures are a floor.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import machine
from bench.server import export_body
from bench.timing import summary, timed_ms
from sense_plugin.archive import demo
from sense_plugin.client.http import SenseClient
from sense_plugin.passwords import hash_password
from sense_plugin.testing.postgres import PgServer
from sense_plugin.testing.serverprocess import ServerProcess
from sense_plugin.testing.siteservers import start_server

RESULTS = Path(__file__).resolve().parent / "results"
DEVICE = 100100
A_ID, B_ID, C_ID = 1001, 1002, 1003
USER, PASSWORD = "bench", "bench-pw"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


def start(root: Path, server_id: int, database_url: str, exports: Path,
          devices: dict[int, Path | None], *, shared: bool = False) -> ServerProcess:
    """A started server of the site exporting to ``exports`` (``shared`` with others), with
    the one user and a write timeout long enough for a slow reader."""
    users = ["[[auth.users]]", f'name = "{USER}"', 'permissions = ["view", "export"]',
             f'password_hash = "{hash_password(PASSWORD, (2**10, 8, 1))}"']
    return start_server(root, server_id, database_url, node_timeout_s=2.0, devices=devices,
                        server_keys=[f'export_roots = ["{exports}"]'],
                        cluster_keys=[f"shared_export_root = {str(shared).lower()}"],
                        tables=["[export]", "download_write_timeout_s = 120",
                                "[auth]", "enabled = true", *users])


def make_export(server: ServerProcess, device: int, start_us: int, end_us: int,
                timeout_s: float = 120) -> str:
    """Export one range of ``device`` on ``server``; its id once COMPLETED."""
    client = SenseClient(server.url, USER, PASSWORD)
    body = export_body([(device, start_us, end_us)]).encode()
    export_id = client.command("exportVideo", body).findtext("exportid") or ""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = client.command("getExportVideoStatus", exportid=export_id)
        if answer.findtext("exports/export/status") == "COMPLETED":
            return export_id
        time.sleep(0.1)
    raise TimeoutError(f"export {export_id} not COMPLETED in {timeout_s} s")


def fetch(server: ServerProcess, path: str, headers: dict[str, str] | None = None) -> None:
    """One GET on a new connection, the body read to its end."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    try:
        conn.request("GET", path, headers={**BASIC, **(headers or {})})
        response = conn.getresponse()
        body = response.read()
        assert response.status in (200, 206), (response.status, body[:200])
    finally:
        conn.close()


def measure(server: ServerProcess, path: str, size_bytes: int, rounds: int, probes: int
            ) -> dict[str, float]:
    seconds = statistics.median(timed_ms(lambda: fetch(server, path), rounds)) / 1000
    first = summary(timed_ms(lambda: fetch(server, path, {"Range": "bytes=0-0"}), probes))
    return {"mb_per_s": round(size_bytes / seconds / 1e6, 1), "whole_s": round(seconds, 3),
            "first_byte_p50_ms": first["p50_ms"], "first_byte_p99_ms": first["p99_ms"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--probes", type=int, default=100)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="sense-relay-bench-"))
    pg_root = Path(tempfile.mkdtemp(prefix="sense-pg-"))
    pg = PgServer(pg_root)
    pg.create()
    servers: list[ServerProcess] = []
    figures: dict[str, Any] = {}
    try:
        end_us = (int(time.time()) - 120) * 1_000_000
        demo.generate_device(root / "archive", name="Big", start_us=end_us - 20_000_000,
                             end_us=end_us, segment_s=20, fps=25, gop_frames=1,
                             bitrate_bps=8_000_000)
        shared = root / "shared"
        servers = [start(root, A_ID, pg.url, shared, {DEVICE: root / "archive"}),
                   start(root, B_ID, pg.url, root / "b", {B_ID * 100: None}),
                   start(root, C_ID, pg.url, shared, {C_ID * 100: None}, shared=True)]
        export_id = make_export(servers[0], DEVICE, end_us - 20_000_000, end_us)
        name = next((shared / "unnamed" / export_id).glob("*.mp4")).name
        figures["file_bytes"] = (shared / "unnamed" / export_id / name).stat().st_size
        base = f"/command?command=downloadExportVideo&exportid={export_id}&file={name}"
        for label, server, extra in (("direct (A)", servers[0], ""),
                                     ("relayed (B from A)", servers[1], f"&serverid={A_ID}"),
                                     ("shared root (C)", servers[2], f"&serverid={A_ID}")):
            figures[label] = measure(server, base + extra, figures["file_bytes"],
                                     args.rounds, args.probes)
    finally:
        for server in servers:
            if server.proc is not None and server.proc.poll() is None:
                server.stop()
        pg.stop("immediate")
        shutil.rmtree(pg_root, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    lines = [f"downloads from any server: one {figures['file_bytes'] / 1e6:.1f} MB file, "
             "loopback, Basic auth, one client"]
    for label in ("direct (A)", "relayed (B from A)", "shared root (C)"):
        f = figures[label]
        lines.append(f"  {label:19} {f['mb_per_s']:7.1f} MB/s (whole file {f['whole_s']:.3f} s)"
                     f"  first byte p50 {f['first_byte_p50_ms']:6.2f} ms"
                     f"  p99 {f['first_byte_p99_ms']:6.2f} ms")
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "relay.txt").write_text(text + "\n")
    (RESULTS / "relay.json").write_text(
        json.dumps({"machine": machine(), **figures}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
