"""B1 export throughput: sense (real server, POST → COMPLETED) vs ffmpeg concat -c copy vs cat.

Same 10-minute range, same segments, same disk; runs interleaved A B C A B C after one warm-up
round; medians, min/max, and the ratios computed pair by pair (round i of A against round i of
B). Source segments are in the page cache (they are read once in the warm-up round).
``os.sync()`` runs (untimed) before every run: sense fsyncs its file (ffmpeg and cat do not),
and on ext4 an fsync would otherwise also flush the dirty pages left by the previous run.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import subprocess
import time
from pathlib import Path

from bench.archive import CACHE_DIR, LONG_ID, Archive
from bench.server import Server

OUT_DIR = CACHE_DIR / "out"
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

    times: dict[str, list[float]] = {"sense": [], "ffmpeg": [], "cat": []}
    sizes: dict[str, int] = {}
    with Server(archive.config, archive.data_dir, "server-b1") as server:
        client = server.client()

        def sense() -> tuple[float, int]:
            t0 = time.perf_counter()
            export_id = client.create([(LONG_ID, lo, hi)])
            root = client.wait(export_id, poll_s=0.002)
            wall = time.perf_counter() - t0
            size = sum(int(s) for s in root.xpath("//file/size/text()"))
            client.remove(export_id)
            return wall, size

        def ffmpeg() -> tuple[float, int]:
            out = OUT_DIR / "ffmpeg.mp4"
            t0 = time.perf_counter()
            subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "concat", "-safe",
                            "0", "-i", str(concat), "-ss", f"{offset_s:.3f}",
                            "-to", f"{offset_s + RANGE_S:.3f}", "-c", "copy", str(out)],
                           check=True)
            wall = time.perf_counter() - t0
            size = out.stat().st_size
            out.unlink()
            return wall, size

        def cat() -> tuple[float, int]:
            out = OUT_DIR / "cat.bin"
            t0 = time.perf_counter()
            with open(out, "wb") as handle:
                subprocess.run(["cat", *[str(p) for p, _, _ in segments]], stdout=handle,
                               check=True)
            wall = time.perf_counter() - t0
            size = out.stat().st_size
            out.unlink()
            return wall, size

        runners = {"sense": sense, "ffmpeg": ffmpeg, "cat": cat}
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
                    "rounds": rounds, "raw_s": times, "output_bytes": sizes}
    for name, walls in times.items():
        result[name] = {**_summary(walls),
                        "x_realtime": RANGE_S / statistics.median(walls),
                        "mb_per_s": sizes[name] / 1e6 / statistics.median(walls)}
    ratio_ff = [a / b for a, b in zip(times["sense"], times["ffmpeg"], strict=True)]
    # throughput ratio sense/cat = (bytes_sense / t_sense) / (bytes_cat / t_cat)
    ratio_cat = [(sizes["sense"] / a) / (sizes["cat"] / c)
                 for a, c in zip(times["sense"], times["cat"], strict=True)]
    result["sense_over_ffmpeg_time"] = _summary(ratio_ff)
    result["sense_over_cat_throughput"] = _summary(ratio_cat)
    result["targets"] = {
        "sense time <= 0.8 x ffmpeg": result["sense_over_ffmpeg_time"]["median"] <= 0.8,
        "sense throughput >= 50% of cat": result["sense_over_cat_throughput"]["median"] >= 0.5,
    }
    return result
