"""B1 export throughput: sense (real server, POST → COMPLETED) against its floor and a peer.

The floor (bench/floor.py) is one pass that reads the segments, writes one file, SHA-256s it
(hashlib) and fsyncs it: what any export of those bytes must do on this CPU and disk. The peer
is ``ffmpeg -f concat -c copy`` on the same segments, then ``sha256sum`` and ``sync`` of its
file (the same guarantees as the export: a digest and the file on disk). Same 10-minute range,
same disk; one warm-up round, then sense, floor, peer interleaved; medians, min/max, and the
ratios sense/floor and sense/peer computed pair by pair (round i against round i). Source
segments are in the page cache (read in the warm-up round). ``os.sync()`` runs (untimed) before
every run, so no run pays for the previous run's dirty pages. The export's status is polled every
20 ms until its progress reaches 85 %, then every 2 ms (the end is seen within 2 ms; the
observer does not take a core's share from the export on a 2-core machine).

The export's worker runs at nice ``WORKER_NICE`` (the status API comes first); the floor and
the peer run at the same nice level, so on a shared machine all three compete with the other
load on equal terms (on a quiet machine the nice level makes no difference). The floor runs in a
process of its own and reports the time of its pass (interpreter start-up excluded).
"""

from __future__ import annotations

import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.archive import CACHE_DIR, LONG_ID, Archive
from bench.server import Server, session_cpu_s
from sense_plugin.media.worker import WORKER_NICE

OUT_DIR = CACHE_DIR / "out"
BENCH_ROOT = Path(__file__).resolve().parents[1]
RANGE_S = 600


def segments_for(archive: Archive, device_id: int, lo: int, hi: int) -> list[tuple[Path, int, int]]:
    db = sqlite3.connect(archive.data_dir / "archive.sqlite3")
    try:
        rows = db.execute(
            "SELECT path, start_us, end_us FROM segments WHERE device_id = ? AND state = 'complete'"
            " AND start_us < ? AND end_us > ? ORDER BY start_us", (str(device_id), hi, lo)
        ).fetchall()
    finally:
        db.close()
    return [(Path(p), int(s), int(e)) for p, s, e in rows]


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def run_b1(archive: Archive, rounds: int, log=print) -> dict:
    lo = archive.ranges_us[LONG_ID][0]
    hi = lo + RANGE_S * 1_000_000
    segments = segments_for(archive, LONG_ID, lo, hi)
    source_bytes = sum(p.stat().st_size for p, _, _ in segments)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    concat = OUT_DIR / "concat.txt"
    concat.write_text("".join(f"file '{p}'\n" for p, _, _ in segments))
    offset_s = (lo - segments[0][1]) / 1e6

    times: dict[str, list[float]] = {"sense": [], "floor": [], "peer": []}
    sense_cpu_s: list[float] = []
    sizes: dict[str, int] = {}
    with Server(archive.config, archive.data_dir, "server-b1") as server:
        client = server.client()

        def sense() -> tuple[float, int]:
            cpu_before = session_cpu_s(server.pid)
            t0 = time.perf_counter()
            export_id = client.create([(LONG_ID, lo, hi)])
            root = client.wait(export_id, poll_s=0.002, coarse_poll_s=0.02)
            wall = time.perf_counter() - t0
            sense_cpu_s.append(session_cpu_s(server.pid) - cpu_before)
            size = sum(int(s) for s in root.xpath("//file/size/text()"))
            client.remove(export_id)
            return wall, size

        def floor() -> tuple[float, int]:
            out = OUT_DIR / "floor.bin"
            printed = subprocess.run(
                ["nice", "-n", str(WORKER_NICE), sys.executable, "-m", "bench.floor", str(out),
                 *[str(p) for p, _, _ in segments]],
                check=True, capture_output=True, text=True, cwd=BENCH_ROOT).stdout.split()
            out.unlink()
            return float(printed[0]), int(printed[2])

        def peer() -> tuple[float, int]:
            out = OUT_DIR / "ffmpeg.mp4"
            nice = ["nice", "-n", str(WORKER_NICE)]
            t0 = time.perf_counter()
            subprocess.run([*nice, "ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "concat",
                            "-safe", "0", "-i", str(concat), "-ss", f"{offset_s:.3f}",
                            "-to", f"{offset_s + RANGE_S:.3f}", "-c", "copy", str(out)],
                           check=True)
            subprocess.run([*nice, "sha256sum", str(out)], check=True, stdout=subprocess.DEVNULL)
            subprocess.run([*nice, "sync", str(out)], check=True)
            wall = time.perf_counter() - t0
            size = out.stat().st_size
            out.unlink()
            return wall, size

        def children_cpu_s() -> float:
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            return usage.ru_utime + usage.ru_stime

        def with_cpu(name: str, func: Callable[[], tuple[float, int]]
                     ) -> Callable[[], tuple[float, int]]:
            def run() -> tuple[float, int]:
                before = children_cpu_s()
                measured = func()
                cpu_s[name].append(children_cpu_s() - before)
                return measured
            return run

        cpu_s: dict[str, list[float]] = {"floor": [], "peer": []}
        runners = {"sense": sense, "floor": with_cpu("floor", floor),
                   "peer": with_cpu("peer", peer)}
        for func in runners.values():  # warm-up: page cache, worker processes, ffmpeg
            func()
        for i in range(rounds):
            for name, func in runners.items():
                os.sync()  # untimed: nobody pays for the previous run's dirty pages
                wall, sizes[name] = func()
                times[name].append(wall)
            log(f"B1 round {i + 1}/{rounds}: " + ", ".join(
                f"{n} {times[n][-1]:.3f} s" for n in runners))
        client.close()

    result: dict = {"range_s": RANGE_S, "segments": len(segments), "source_bytes": source_bytes,
                    "rounds": rounds, "raw_s": times, "output_bytes": sizes,
                    "load_average_after": os.getloadavg(),
                    # server + worker CPU per export (status polls included): load-independent
                    "cpu_s": {"sense": _summary(sense_cpu_s[1:]),
                              **{k: _summary(v[1:]) for k, v in cpu_s.items()}}}
    for name, walls in times.items():
        result[name] = {**_summary(walls),
                        "x_realtime": RANGE_S / statistics.median(walls),
                        "mb_per_s": sizes[name] / 1e6 / statistics.median(walls)}
    for other in ("floor", "peer"):
        result[f"sense_over_{other}"] = _summary(
            [a / b for a, b in zip(times["sense"], times[other], strict=True)])
    result["targets"] = {
        "sense <= 1.25 x floor": result["sense_over_floor"]["median"] <= 1.25,
        "sense <= 0.5 x ffmpeg peer": result["sense_over_peer"]["median"] <= 0.5,
    }
    return result
