"""``python -m bench.snapshot``: how long a snapshot of a 1080p25 archive takes (p50, p99).

Source: the render bench's 1080p25 H.264 (Debian ffmpeg, 4 Mbit/s, a keyframe every 2 s), in
page cache after the first round. Instants are drawn at random, so the decode from the
keyframe before each instant costs 0-49 frames. Measured in-process, as ``getSnapshot`` runs
it on the server's thread pool: full-size JPEG, and the 320-wide preview the web page fetches.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from bench.render import RESULTS, T0_US, log, make_source
from sense_plugin.media.cutspec import SourceSegment
from sense_plugin.media.renderoptions import RenderOptions
from sense_plugin.media.snapshot import grab


def measure(segments: tuple[SourceSegment, ...], seconds: int, count: int,
            options: RenderOptions | None) -> list[float]:
    rng = random.Random(4711)
    times = []
    for _ in range(count):
        instant = T0_US + rng.randrange(0, seconds * 1_000_000)
        started = time.perf_counter()
        grab(segments, instant, "jpg", options)
        times.append((time.perf_counter() - started) * 1000)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.snapshot")
    parser.add_argument("--count", type=int, default=40)
    args = parser.parse_args(argv)
    seconds = 8
    source = make_source(seconds)
    segments = (SourceSegment(str(source), T0_US, T0_US + seconds * 1_000_000),)
    measure(segments, seconds, 3, None)  # page cache, imports
    rows = {}
    for label, options in (("1920x1080 JPEG", None), ("320 wide JPEG", RenderOptions(width=320))):
        times = sorted(measure(segments, seconds, args.count, options))
        rows[label] = {"p50_ms": statistics.median(times),
                       "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))],
                       "max_ms": times[-1]}
    date = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "snapshot.json").write_text(json.dumps({"date": date, "count": args.count,
                                                       "results": rows}, indent=2) + "\n")
    lines = [f"Snapshot bench of {date}: {args.count} random instants in 1080p25 H.264 "
             "(keyframe every 2 s), target p50 <= 300 ms.", "",
             "| snapshot | p50 ms | p99 ms | max ms |", "|---|---|---|---|"]
    lines += [f"| {label} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['max_ms']:.0f} |"
              for label, r in rows.items()]
    text = "\n".join(lines) + "\n"
    (RESULTS / "snapshot.md").write_text(text)
    log(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
