"""B1–B4 of two source trees, interleaved: ``python -m bench.pair --base DIR [--rounds 2]``.

A shared machine's load swings the figures from one minute to the next, so a before/after
comparison of a redesign is made by running ``python -m bench`` alternately in the other tree
(``--base``, e.g. ``git worktree add DIR <commit>``) and in this one, round after round, on
the same cached archive, then comparing the medians of each figure per tree (ratio new/base:
below 1 is better for times, above 1 for rates). Saves ``bench/results/pair.json`` and
``pair.txt``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]
RESULTS = HERE / "bench" / "results"
#: (label, path in latest.json, higher is better)
FIGURES: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("B1 sense wall median s", ("b1", "sense", "median"), False),
    ("B1 sense/floor time", ("b1", "sense_over_floor", "median"), False),
    ("B1 sense/peer time", ("b1", "sense_over_peer", "median"), False),
    ("B1 sense CPU s", ("b1", "cpu_s", "sense", "median"), False),
    ("B1 floor CPU s", ("b1", "cpu_s", "floor", "median"), False),
    ("jobs 2 at once / one", ("jobs", "concurrent", "2", "over_one", "median"), False),
    ("jobs 4 at once / one", ("jobs", "concurrent", "4", "over_one", "median"), False),
    ("jobs CPU s per export, one", ("jobs", "cpu_s_per_export", "1", "median"), False),
    ("jobs CPU s per export, 4", ("jobs", "cpu_s_per_export", "4", "median"), False),
    ("B2 by_id idle req/s", ("b2", "cases", "by_id / idle", "req_per_s"), True),
    ("B2 by_id idle p99 ms", ("b2", "cases", "by_id / idle", "p99_ms"), False),
    ("B2 list idle req/s", ("b2", "cases", "list / idle", "req_per_s"), True),
    ("B2 list idle p99 ms", ("b2", "cases", "list / idle", "p99_ms"), False),
    ("B2 by_id running req/s", ("b2", "cases", "by_id / 2 exports running", "req_per_s"), True),
    ("B2 by_id running p99 ms", ("b2", "cases", "by_id / 2 exports running", "p99_ms"), False),
    ("B2 list running req/s", ("b2", "cases", "list / 2 exports running", "req_per_s"), True),
    ("B2 list running p99 ms", ("b2", "cases", "list / 2 exports running", "p99_ms"), False),
    ("B3 server peak MB 60 min", ("b3", "spans", "60 min", "server_peak_mb"), False),
    ("B3 all processes peak MB 60 min", ("b3", "spans", "60 min", "sum_peak_mb"), False),
    ("B4 paged p50 ms", ("b4", "paged_limit10", "p50_ms"), False),
    ("B4 paged offset 9000 p50 ms", ("b4", "paged_limit10_offset9000", "p50_ms"), False),
    ("B4 by id p50 ms", ("b4", "by_id", "p50_ms"), False),
    ("B4 full list p50 ms", ("b4", "full_list", "p50_ms"), False),
    ("B4 server start s", ("b4", "server_start_s", ), False),
)


def figure(result: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, int | float) else None


def one_run(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``python -m bench`` in ``tree`` (its own package and bench code); its latest.json."""
    command = [sys.executable, "-m", "bench", "--only", args.only, "--rounds", str(args.b1_rounds),
               "--duration", str(args.duration)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    started = time.monotonic()
    subprocess.run(command, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    result: dict[str, Any] = json.loads((tree / "bench/results/latest.json").read_text())
    result["wall_s"] = time.monotonic() - started
    return result


def compare(runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for label, path, higher_better in FIGURES:
        medians = {}
        for tree, results in runs.items():
            values = [v for v in (figure(r, path) for r in results) if v is not None]
            medians[tree] = statistics.median(values) if values else None
        base, new = medians.get("base"), medians.get("new")
        ratio = new / base if base and new is not None else None
        worse = None if ratio is None else (ratio < 1 if higher_better else ratio > 1)
        rows.append({"figure": label, "base": base, "new": new, "ratio_new_over_base": ratio,
                     "higher_is_better": higher_better, "new_is_worse": worse})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pair")
    parser.add_argument("--base", type=Path, required=True, help="the other source tree")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", default="b1,b2,b3,b4")
    parser.add_argument("--b1-rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    args = parser.parse_args()
    trees = {"base": args.base.resolve(), "new": HERE}
    runs: dict[str, list[dict[str, Any]]] = {"base": [], "new": []}
    for round_number in range(args.rounds):
        for name, tree in trees.items():
            print(f"round {round_number + 1}: {name} ({tree})", flush=True)
            runs[name].append(one_run(tree, args))
    rows = compare(runs)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pair.json").write_text(json.dumps({"trees": {k: str(v) for k, v in
                                                             trees.items()},
                                                   "rows": rows, "runs": runs}, indent=1))
    lines = [f"{'figure':34} {'base':>10} {'new':>10} {'new/base':>9}"]
    for row in rows:
        ratio = row["ratio_new_over_base"]
        lines.append(f"{row['figure']:34} {_num(row['base']):>10} {_num(row['new']):>10} "
                     f"{'-' if ratio is None else f'{ratio:.2f}':>9}"
                     f"{'  worse' if row['new_is_worse'] else ''}")
    text = "\n".join(lines)
    (RESULTS / "pair.txt").write_text(text + "\n")
    print(text)
    return 0


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


if __name__ == "__main__":
    sys.exit(main())
