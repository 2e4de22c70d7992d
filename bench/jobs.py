"""Device jobs at once: N exports of 10 minutes started together, against one alone.

Each export is a different 10-minute range of the long camera (its own source bytes), on a
server allowed ``max`` jobs at once; the wall time from the first POST to the last COMPLETED of
N at once is divided by the wall time of one export, round by round (one, then 2, then 4,
interleaved), pairwise medians. With enough cores and disk the ratio stays near 1; once the
cores (or the disk's write rate) are all taken it grows towards N. The CPU seconds per export
(server and workers, from /proc) say which: constant CPU per export with a growing wall time
means the cores were the limit, not contention in the server.

The same is measured of the floor (``bench/floor.py``: read + write + SHA-256 + fsync, one pass,
no parsing), N passes at once over the same N ranges, each in a process of its own at the export
workers' nice level, started together once their interpreters are up: what N at once over one
costs on this machine's disk and cores when nothing but the necessary work is done. The floor's
ratio is the limit an export's ratio can be judged by; both are interleaved round by round.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.archive import BENCH_DIR, CACHE_DIR, LONG_ID, Archive
from bench.server import Server, session_cpu_s
from bench.throughput import OUT_DIR, segments_for
from sense_plugin.media.worker import WORKER_NICE

RANGE_S = 600
COUNTS = (1, 2, 4)


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def floors_together(sources: list[list[Path]]) -> float:
    """Wall seconds of one floor pass per source list, all started at once (interpreter
    start-up excluded): from the go to the end of the last pass."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    outs = [OUT_DIR / f"floor-{i}.bin" for i in range(len(sources))]
    procs = [subprocess.Popen(
        ["nice", "-n", str(WORKER_NICE), sys.executable, "-m", "bench.floor", "--go", str(out),
         *map(str, paths)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        cwd=BENCH_DIR.parent) for out, paths in zip(outs, sources, strict=True)]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        go = time.monotonic()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("\n")
            proc.stdin.flush()
        ends = [float(proc.communicate()[0]) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        for out in outs:
            out.unlink(missing_ok=True)
    return max(ends) - go


def run_jobs(archive: Archive, rounds: int, log=print) -> dict:
    lo = archive.ranges_us[LONG_ID][0]
    ranges = [(LONG_ID, lo + i * RANGE_S * 1_000_000, lo + (i + 1) * RANGE_S * 1_000_000)
              for i in range(max(COUNTS))]
    config = CACHE_DIR / "server-jobs.toml"
    config.write_text(archive.config.read_text().replace(
        "max_concurrent_jobs = 2", f"max_concurrent_jobs = {max(COUNTS)}"))
    sources = [[p for p, _, _ in segments_for(archive, device, start, end)]
               for device, start, end in ranges]
    walls: dict[int, list[float]] = {n: [] for n in COUNTS}
    floor_walls: dict[int, list[float]] = {n: [] for n in COUNTS}
    cpu_per_export: dict[int, list[float]] = {n: [] for n in COUNTS}
    with Server(config, archive.data_dir, "server-jobs") as server:
        client = server.client()

        def together(count: int) -> float:
            t0 = time.perf_counter()
            ids = [client.create([r]) for r in ranges[:count]]
            for export_id in ids:
                client.wait(export_id, poll_s=0.002, coarse_poll_s=0.02)
            wall = time.perf_counter() - t0
            for export_id in ids:
                client.remove(export_id)
            return wall

        together(max(COUNTS))  # warm-up: every range in the page cache, the workers started
        floors_together(sources)
        for i in range(rounds):
            for count in COUNTS:
                os.sync()
                cpu_before = session_cpu_s(server.pid)
                walls[count].append(together(count))
                cpu_per_export[count].append((session_cpu_s(server.pid) - cpu_before) / count)
                os.sync()
                floor_walls[count].append(floors_together(sources[:count]))
            log(f"jobs round {i + 1}/{rounds}: " + ", ".join(
                f"{n} at once {walls[n][-1]:.3f} s (floor {floor_walls[n][-1]:.3f} s)"
                for n in COUNTS))
        client.close()
    return {"range_s": RANGE_S, "rounds": rounds, "raw_s": {str(k): v for k, v in walls.items()},
            "floor_raw_s": {str(k): v for k, v in floor_walls.items()},
            "cores": os.cpu_count(), "load_average_after": os.getloadavg(),
            "cpu_s_per_export": {str(n): _summary(v) for n, v in cpu_per_export.items()},
            "concurrent": _over_one(walls), "floor_concurrent": _over_one(floor_walls)}


def _over_one(walls: dict[int, list[float]]) -> dict:
    """N at once over one alone, round by round."""
    one = walls[1]
    return {str(n): {**_summary(walls[n]), "over_one": _summary(
        [a / b for a, b in zip(walls[n], one, strict=True)])} for n in COUNTS[1:]}
