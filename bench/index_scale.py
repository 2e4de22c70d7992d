"""``python3 -m bench.index_scale``: the archive index at 1,000,000 segments (docs/archive.rst
scale).

20 cameras × 50,000 one-minute segments (about 35 days each). Every segment is a real file
under ``bench/cache/index-scale/`` named in today's pattern, but all of them are hard links to
one real tiny H.264 segment (so 1M directory entries, one inode, a few kB of media); the index
rows carry one-minute spans. Measured, and saved to ``bench/results/index-scale.{json,txt}``:

- insert of 1M rows, probe rate of real files (→ the time a rebuild from nothing would take),
  a full rescan of the 1M files against an up-to-date index, one camera's rescan;
- a real ``sense-plugin serve`` on that data: start time, RSS, ``getRecordings`` over one day
  and ``getServerStatus`` over HTTP (p50/p99), and export planning (the index query and sums
  ``export/runner.py _plan`` makes for a one-day range) in-process, p50/p99;
- index size on disk.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.archive import CACHE_DIR
from bench.report import machine
from bench.server import Client, fmt_ts, free_port
from sense_plugin import naming
from sense_plugin.archive import demo
from sense_plugin.archive.index import ArchiveIndex, Segment
from sense_plugin.archive.probe import probe_segment
from sense_plugin.archive.scan import reconcile_device
from sense_plugin.naming import compiled

ROOT = CACHE_DIR / "index-scale"
RESULTS = Path(__file__).resolve().parent / "results"
SEGMENT_US = 60_000_000
T0_US = 1_764_547_200_000_000  # 2025-12-01 00:00:00 UTC
FIRST_DEVICE = 9_000_000_000_000_000_000


def log(text: str) -> None:
    print(text, flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def build_files(cameras: int, per_camera: int) -> tuple[Path, float]:
    """One real segment (a copy per camera), hard-linked under every name; returns it and
    the seconds taken."""
    began = time.monotonic()
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    source = ROOT / "source.mp4"
    demo.write_segment(source, start_us=T0_US, duration_s=1.0, fmt="mp4", width=64,
                       height=64, fps=10, gop_frames=10, bitrate_bps=50_000, label="SCALE")
    for cam in range(cameras):
        directory = ROOT / "archive" / str(FIRST_DEVICE + cam)
        directory.mkdir(parents=True)
        copy = ROOT / f"source-{cam}.mp4"  # ext4 allows 65,000 links per inode
        shutil.copy2(source, copy)
        for i in range(per_camera):
            os.link(copy, directory / naming.segment_filename(T0_US + i * SEGMENT_US, "mp4"))
    return source, time.monotonic() - began


def build_index(cameras: int, per_camera: int, source: Path) -> tuple[float, int]:
    db = ROOT / "data" / "archive.sqlite3"
    db.parent.mkdir(parents=True, exist_ok=True)
    stat = source.stat()
    index = ArchiveIndex(db)
    began = time.monotonic()
    for cam in range(cameras):
        device = FIRST_DEVICE + cam
        directory = ROOT / "archive" / str(device)
        rows = [(Segment(device, T0_US + i * SEGMENT_US, T0_US + (i + 1) * SEGMENT_US,
                         directory / naming.segment_filename(T0_US + i * SEGMENT_US, "mp4"),
                         stat.st_size), stat.st_mtime_ns) for i in range(per_camera)]
        index.add_many(rows)
    elapsed = time.monotonic() - began
    index.close()
    return elapsed, sum(p.stat().st_size for p in db.parent.glob("archive.sqlite3*"))


def measure_scans(cameras: int, probes: int) -> dict[str, float]:
    index = ArchiveIndex(ROOT / "data" / "archive.sqlite3")
    pattern = compiled("%Y%m%dT%H%M%S.%fZ.{ext}")
    try:
        files = sorted((ROOT / "archive" / str(FIRST_DEVICE)).iterdir())[:probes]
        began = time.monotonic()
        for path in files:
            probe_segment(path)
        probe_ms = (time.monotonic() - began) * 1000 / len(files)
        began = time.monotonic()
        for cam in range(cameras):
            device = FIRST_DEVICE + cam
            report = reconcile_device(index, device, ROOT / "archive" / str(device),
                                      pattern=pattern)
            assert not report.changed, report
        full_s = time.monotonic() - began
        began = time.monotonic()
        for cam in range(cameras):
            device = FIRST_DEVICE + cam
            reconcile_device(index, device, ROOT / "archive" / str(device), pattern=pattern,
                             stat_known=False)
        backstop_s = time.monotonic() - began
        one = []
        for _ in range(3):
            began = time.monotonic()
            reconcile_device(index, FIRST_DEVICE, ROOT / "archive" / str(FIRST_DEVICE),
                             pattern=pattern)
            one.append(time.monotonic() - began)
    finally:
        index.close()
    return {"probe_ms_per_file": probe_ms, "full_rescan_s": full_s,
            "backstop_rescan_s": backstop_s,
            "one_camera_rescan_s": statistics.median(one)}


def plan_latencies(cameras: int, per_camera: int, queries: int) -> list[float]:
    """What ``JobRunner._plan`` does before the worker starts, for one-day ranges."""
    index = ArchiveIndex(ROOT / "data" / "archive.sqlite3")
    rng = random.Random(7)
    times = []
    try:
        for _ in range(queries):
            device = FIRST_DEVICE + rng.randrange(cameras)
            start = T0_US + rng.randrange(per_camera - 1500) * SEGMENT_US + 12_345_678
            end = start + 86_400_000_000
            began = time.perf_counter()
            segments = index.segments(device, start, end)
            recorded = sum(min(s.end_us, end) - max(s.start_us, start) for s in segments)
            payload = [{"path": s.path_text, "start_us": s.start_us, "end_us": s.end_us}
                       for s in segments]
            times.append((time.perf_counter() - began) * 1000)
            assert recorded > 0 and len(payload) >= 1440
    finally:
        index.close()
    return times


def write_config(cameras: int) -> Path:
    lines = ['[server]', 'serverid = "1"', 'name = "scale"', f'data_dir = "{ROOT / "data"}"',
             '[archive]', 'demo = false', 'max_age_days = 0']
    for cam in range(cameras):
        device = FIRST_DEVICE + cam
        lines += ['[[devices]]', f'deviceid = "{device}"', f'name = "cam{cam}"',
                  f'archive_dir = "{ROOT / "archive" / str(device)}"']
    path = ROOT / "scale.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def rss_mb(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def serve_and_query(cameras: int, per_camera: int, queries: int) -> dict[str, object]:
    port = free_port()
    with open(ROOT / "server.log", "wb") as out:
        began = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "sense_plugin", "serve", "--config",
                                 str(write_config(cameras)), "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
        try:
            client = _wait_up(port, proc)
            start_s = time.monotonic() - began
            while not re.search(rb"archive index \S+: ScanReport",
                                (ROOT / "server.log").read_bytes()):
                time.sleep(0.1)  # the first reconcile may finish in the background
            reconciled_s = time.monotonic() - began
            rng = random.Random(3)
            rec, status = [], []
            for _ in range(queries):
                device = FIRST_DEVICE + rng.randrange(cameras)
                start = T0_US + rng.randrange(per_camera - 1500) * SEGMENT_US
                query = (f"getRecordings&deviceid={device}&starttime={fmt_ts(start)}"
                         f"&endtime={fmt_ts(start + 86_400_000_000)}").replace(" ", "+")
                t = time.perf_counter()
                root = client.command(query)
                rec.append((time.perf_counter() - t) * 1000)
                assert root.find("recordings/intervals/interval") is not None
                t = time.perf_counter()
                client.command("getServerStatus")
                status.append((time.perf_counter() - t) * 1000)
            memory = rss_mb(proc.pid)
            client.close()
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    return {"server_start_s": start_s, "server_reconciled_s": reconciled_s,
            "getrecordings_day_ms": rec,
            "getserverstatus_ms": status, "server_rss_mb": memory}


def _wait_up(port: int, proc: subprocess.Popen[bytes]) -> Client:
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited; see {ROOT / 'server.log'}")
        try:
            client = Client(port)
            client.conn.timeout = 2
            client.conn.request("GET", "/info")
            if client.conn.getresponse().read():
                client.conn.timeout = 120
                return client
        except OSError:
            time.sleep(0.2)
    raise TimeoutError("server did not start")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.index_scale")
    parser.add_argument("--cameras", type=int, default=20)
    parser.add_argument("--segments", type=int, default=50_000, help="per camera")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--probes", type=int, default=500)
    parser.add_argument("--reuse", action="store_true",
                        help="keep the files and index of an earlier run of the same size")
    args = parser.parse_args(argv)
    # The hard links all carry the one source's creation_time: that warning is expected here.
    logging.getLogger("sense_plugin.archive.probe").setLevel(logging.ERROR)
    total = args.cameras * args.segments
    stamp = ROOT / "built.json"
    wanted = {"cameras": args.cameras, "segments": args.segments}
    if args.reuse and stamp.is_file() and json.loads(stamp.read_text())["wanted"] == wanted:
        built = json.loads(stamp.read_text())
        files_s, insert_s, size_bytes = built["files_s"], built["insert_s"], built["bytes"]
        log(f"reusing the {total} segment files and index built before")
    else:
        log(f"building {total} segment files (hard links) ...")
        source, files_s = build_files(args.cameras, args.segments)
        insert_s, size_bytes = build_index(args.cameras, args.segments, source)
        stamp.write_text(json.dumps({"wanted": wanted, "files_s": files_s,
                                     "insert_s": insert_s, "bytes": size_bytes}))
    log(f"files {files_s:.1f} s, index insert {insert_s:.1f} s, {size_bytes / 1e6:.0f} MB")
    scans = measure_scans(args.cameras, args.probes)
    log(f"scans: {scans}")
    plans = plan_latencies(args.cameras, args.segments, args.queries)
    served = serve_and_query(args.cameras, args.segments, args.queries)
    result = {
        "machine": machine(), "cameras": args.cameras, "segments_per_camera": args.segments,
        "segments": total,
        "files": "hard links to one real 1 s H.264 MP4 segment (a copy per camera)",
        "create_files_s": files_s, "index_insert_s": insert_s, "index_bytes": size_bytes,
        **scans,
        "rebuild_from_nothing_estimate_s": insert_s + scans["probe_ms_per_file"] * total / 1000,
        "plan_day_ms": plans, **served,
    }
    text = report(result)
    log(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "index-scale.txt").write_text(text + "\n")
    summary = {k: v for k, v in result.items() if not isinstance(v, list)}
    for key in ("plan_day_ms", "getrecordings_day_ms", "getserverstatus_ms"):
        values = result[key]
        assert isinstance(values, list)
        summary[key] = {"p50": pct(values, 0.5), "p99": pct(values, 0.99), "n": len(values)}
    (RESULTS / "index-scale.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


def report(r: dict[str, object]) -> str:
    def lat(key: str) -> str:
        values = r[key]
        assert isinstance(values, list)
        return f"p50 {pct(values, 0.5):.2f} ms, p99 {pct(values, 0.99):.2f} ms"

    rss = r["server_rss_mb"]
    assert isinstance(rss, dict)
    return "\n".join([
        f"index scale: {r['segments']} segments ({r['cameras']} cameras x "
        f"{r['segments_per_camera']}), files: {r['files']}",
        f"machine: {r['machine']}",
        f"index insert of all rows: {r['index_insert_s']:.1f} s; "
        f"index on disk {int(r['index_bytes']) / 1e6:.0f} MB",  # type: ignore[call-overload]
        f"probe of a real segment: {r['probe_ms_per_file']:.2f} ms/file -> rebuild from "
        f"nothing ~{r['rebuild_from_nothing_estimate_s']:.0f} s",
        f"full rescan (list+stat+compare, nothing new): {r['full_rescan_s']:.1f} s; "
        f"one camera: {r['one_camera_rescan_s']:.2f} s; backstop while watching (no stat of "
        f"known files): {r['backstop_rescan_s']:.1f} s",
        f"server answers after {r['server_start_s']:.1f} s; its first full rescan is done "
        f"after {r['server_reconciled_s']:.1f} s; "
        f"RSS {rss.get('VmRSS', 0):.0f} MB (peak {rss.get('VmHWM', 0):.0f} MB)",
        f"getRecordings over one day (HTTP): {lat('getrecordings_day_ms')}  (goal <= 20 ms)",
        f"getServerStatus, 20 devices (HTTP): {lat('getserverstatus_ms')}",
        f"export planning, one day (1440 segments): {lat('plan_day_ms')}  (goal <= 20 ms)",
    ])


if __name__ == "__main__":
    raise SystemExit(main())
