"""``python3 -m bench.relay``: downloads from any server of a site, direct vs relayed vs shared.

One PostgreSQL and three real ``sense-plugin serve`` processes on loopback (the servers of
``tests/test_cluster_relay.py``): A holds a ~20 MB export file; B relays it from A; C reads it
from the export root it shares with A. This process downloads the file from each (whole file,
read to the end; the median of ``--rounds``), and the first byte (``Range: bytes=0-0``, p50
and p99 of ``--probes``), saved to ``bench/results/relay.{txt,json}``. The client, the three
servers and PostgreSQL share this machine's cores, so the figures are a floor.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import machine
from bench.timing import summary, timed_ms
from sense_plugin.archive import demo
from tests.pgserver import PgServer
from tests.serverproc import ServerProcess
from tests.test_cluster_relay import A_ID, B_ID, C_ID, call, make_export, start

RESULTS = Path(__file__).resolve().parent / "results"
DEVICE = 100100


def fetch(server: ServerProcess, path: str, headers: dict[str, str] | None = None) -> None:
    status, _headers, body = call(server, path, headers=headers)
    assert status in (200, 206), (status, body[:200])


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
        export_id = make_export(servers[0], (DEVICE, end_us - 20_000_000, end_us))
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
