"""``python -m bench.index_plan --base DIR``: planning a day over 1M segments, two trees.

Builds a 1,000,000-row archive index (20 cameras x 50,000 one-minute segments, paths as the
recorder names them; no media files) with each tree's own ``ArchiveIndex``, then measures, in
alternating rounds (a fresh process per round and tree), what an export's planning asks of the
index for a one-day range: the segment query and the sums ``bench.index_scale`` times
(``plan_latencies``). Reports the index's size on disk and p50/p99 per tree
(``bench/results/index-plan.{json,txt}``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench.archive import CACHE_DIR

HERE = Path(__file__).resolve().parents[1]
ROOT = CACHE_DIR / "index-plan"
RESULTS = HERE / "bench" / "results"

_BUILD = """
import sys, time
from pathlib import Path
from sense_plugin import naming
from sense_plugin.archive.index import ArchiveIndex, Segment
db, cameras, per_camera = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
T0, MIN, DEV = 1_764_547_200_000_000, 60_000_000, 9_000_000_000_000_000_000
index = ArchiveIndex(db)
began = time.monotonic()
for cam in range(cameras):
    folder = Path("/srv/archive") / str(DEV + cam)
    index.add_many([(Segment(DEV + cam, T0 + i * MIN, T0 + (i + 1) * MIN,
                             folder / naming.segment_filename(T0 + i * MIN, "mp4"), 4_000_000),
                     1) for i in range(per_camera)])
index.close()
print(time.monotonic() - began)
"""

_QUERY = """
import json, random, sys, time
from pathlib import Path
from sense_plugin.archive.index import ArchiveIndex
db, cameras, per_camera, count, seed = (Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
                                        int(sys.argv[4]), int(sys.argv[5]))
T0, MIN, DEV, DAY = 1_764_547_200_000_000, 60_000_000, 9_000_000_000_000_000_000, 86_400_000_000
index = ArchiveIndex(db)
rng = random.Random(seed)
times = []
for _ in range(count):
    device = DEV + rng.randrange(cameras)
    start = T0 + rng.randrange(per_camera - 1500) * MIN + 12_345_678
    began = time.perf_counter()
    segments = index.segments(device, start, start + DAY)
    recorded = sum(min(s.end_us, start + DAY) - max(s.start_us, start) for s in segments)
    payload = [{"path": s.path_text, "start_us": s.start_us, "end_us": s.end_us}
               for s in segments]
    times.append((time.perf_counter() - began) * 1000)
    assert recorded > 0 and len(payload) >= 1440
index.close()
print(json.dumps(times))
"""


def _run(tree: Path, code: str, *args: object) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env, cwd=tree,
                          check=True, capture_output=True, text=True).stdout


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.index_plan")
    parser.add_argument("--base", type=Path, required=True, help="the other source tree")
    parser.add_argument("--cameras", type=int, default=20)
    parser.add_argument("--segments", type=int, default=50_000, help="per camera")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queries", type=int, default=200, help="per round and tree")
    args = parser.parse_args()
    trees = {"base": args.base.resolve(), "new": HERE}
    ROOT.mkdir(parents=True, exist_ok=True)
    result: dict = {"rows": args.cameras * args.segments, "trees": {}}
    for name, tree in trees.items():
        db = ROOT / f"{name}.sqlite3"
        for old in ROOT.glob(f"{name}.sqlite3*"):
            old.unlink()
        build_s = float(_run(tree, _BUILD, db, args.cameras, args.segments))
        size = sum(p.stat().st_size for p in ROOT.glob(f"{name}.sqlite3*"))
        result["trees"][name] = {"tree": str(tree), "build_s": build_s, "bytes": size,
                                 "plan_ms": []}
        print(f"{name}: built in {build_s:.1f} s, {size / 1e6:.0f} MB", flush=True)
    for round_number in range(args.rounds):
        for name, tree in trees.items():
            times = json.loads(_run(tree, _QUERY, ROOT / f"{name}.sqlite3", args.cameras,
                                    args.segments, args.queries, round_number))
            result["trees"][name]["plan_ms"] += times
            print(f"round {round_number + 1} {name}: p50 {statistics.median(times):.2f} ms, "
                  f"p99 {_pct(times, 0.99):.2f} ms", flush=True)
    lines = [f"index_plan: {result['rows']} segments; load average {os.getloadavg()}"]
    for name, figures in result["trees"].items():
        times = figures.pop("plan_ms")
        figures.update(p50_ms=statistics.median(times), p99_ms=_pct(times, 0.99), n=len(times))
        lines.append(f"{name:5} {figures['bytes'] / 1e6:6.0f} MB  planning a day: p50 "
                     f"{figures['p50_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms "
                     f"({figures['n']} queries; goal p99 <= 20 ms)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "index-plan.json").write_text(json.dumps(result, indent=1))
    (RESULTS / "index-plan.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
