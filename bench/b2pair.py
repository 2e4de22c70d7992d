"""B2 under load, paired: ``python -m bench.b2pair --base DIR [--query list|by_id] [--rounds 3]
[--duration 10] [--profile]``.

On a shared machine the load of other programs swings B2's figures by a factor of five from one
minute to the next, so a before/after comparison run minutes apart says little. This runs the
"full list while two exports run" case of B2 alternately on the server of another source tree
(``--base``, e.g. ``git archive BASE | tar -x -C DIR``) and on this tree's, round after round,
and reports per server the median req/s, p50 and p99, and the server process's CPU time per
request (from ``/proc``: far less sensitive to the machine's load than latency), and how long
the two exports kept running meanwhile take from create to COMPLETED (a faster server must
not slow them down). Rounds alternate which server goes first. ``--query
by_id`` loads status by id of the middle export of the history instead of the full list;
``--profile`` records the server with py-spy in the last round (top frames saved as
``bench/results/profile-b2pair-QUERY-TREE.txt``). Saves
``bench/results/b2pair.json`` (the list) or ``b2pair-by_id.json``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.__main__ import reset_exports
from bench.archive import BENCH_DIR, CACHE_DIR, LONG_ID, SHORT_ID, Archive, ensure_archive
from bench.load import HISTORY, Feeder, make_history, wrk
from bench.server import Server

RESULTS = BENCH_DIR / "results"
QUERY = "getExportVideoStatus"


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def summarise_profile(raw: Path, title: str) -> str:
    """The top frames of py-spy's collapsed stacks: self time, and this project's inclusive."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames, samples = stack.split(";"), int(count)
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    lines = [f"== {title}: {total} samples; top self time"]
    lines += [f"{100 * n / total:5.1f}%  {f}" for f, n in own.most_common(25)]
    lines.append("-- top inclusive (sense_plugin frames)")
    lines += [f"{100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common()
              if "sense_plugin/" in f and n / total >= 0.004][:60]
    return "\n".join(lines) + "\n"


def load_with_profile(pid: int, port: int, query: str, duration_s: int, out: Path | None
                      ) -> dict:
    """``wrk`` on ``query``; with ``out``, py-spy samples the server meanwhile (200 Hz)."""
    if out is None:
        return wrk(port, query, duration_s, threads=2)
    spy = subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--rate", "200",
                            "--duration", str(duration_s), "--format", "raw", "--output",
                            str(out), "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return wrk(port, query, duration_s, threads=2)
    finally:
        spy.wait()


def one_run(tree: Path, archive: Archive, duration_s: int, by_id: bool = False,
            profile: Path | None = None) -> dict:
    """A fresh server of ``tree``: 100 exports in history, then the list under load."""
    reset_exports()
    here = Path.cwd()
    os.chdir(tree)  # `python -m sense_plugin` imports the package of its working directory
    try:
        server = Server(archive.config, archive.data_dir, "server-b2pair")
    finally:
        os.chdir(here)
    with server:
        client = server.client()
        ids = make_history(client, archive, HISTORY)
        query = f"{QUERY}&exportid={ids[len(ids) // 2]}" if by_id else QUERY
        long_lo, long_hi = archive.ranges_us[LONG_ID]
        short_lo, short_hi = archive.ranges_us[SHORT_ID]
        with Feeder(server.port, [(LONG_ID, long_lo, long_hi),
                                  (SHORT_ID, short_lo, short_hi)]) as feeder:
            ticks0 = cpu_ticks(server.pid)
            figures = load_with_profile(server.pid, server.port, query, duration_s, profile)
            used_s = (cpu_ticks(server.pid) - ticks0) / os.sysconf("SC_CLK_TCK")
        client.close()
    # the exports' own pace under this load: must not get slower when the server gets faster
    figures["export_s"] = {("long" if dev == LONG_ID else "short"): times
                           for dev, times in feeder.export_s.items()}
    figures["cpu_ms_per_request"] = used_s * 1000 / max(1, figures["requests"])
    figures["server_cpu_s"] = used_s
    figures["load_average"] = os.getloadavg()[0]
    return figures


def summary(runs: list[dict]) -> dict:
    keys = ("req_per_s", "p50_ms", "p99_ms", "cpu_ms_per_request", "server_cpu_s",
            "wrk_cpu_s")
    medians = {k: statistics.median(r[k] for r in runs) for k in keys}
    for kind in ("short", "long"):
        times = [t for r in runs for t in r["export_s"].get(kind, [])]
        medians[f"{kind}_export_s"] = statistics.median(times) if times else float("nan")
    return medians | {"runs": runs}


def round_line(figures: dict) -> str:
    exports = "  ".join(f"{kind} export {statistics.median(t):.2f} s (n={len(t)})"
                        for kind, t in figures["export_s"].items() if t)
    return (f"{figures['req_per_s']:6.0f} req/s  p50 {figures['p50_ms']:6.1f} ms  "
            f"p99 {figures['p99_ms']:6.1f} ms  server CPU {figures['cpu_ms_per_request']:.3f} "
            f"ms/request  CPU s server {figures['server_cpu_s']:.1f} wrk "
            f"{figures['wrk_cpu_s']:.1f}  {exports}  (load {figures['load_average']:.1f})")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.b2pair")
    parser.add_argument("--base", type=Path, required=True, help="the other source tree")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--query", choices=("list", "by_id"), default="list")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the server in the last round; summaries in bench/results")
    args = parser.parse_args()
    archive = ensure_archive("tiled", 10, log=print)
    trees = {"base": args.base.resolve(), "this": BENCH_DIR.parent}
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    for round_no in range(args.rounds):
        order = list(trees.items())
        for name, tree in order if round_no % 2 == 0 else reversed(order):  # neither always first
            raw = CACHE_DIR / f"profile-b2pair-{name}.txt"  # raw stacks: not committed
            profile = raw if args.profile and round_no == args.rounds - 1 else None
            figures = one_run(tree, archive, args.duration, args.query == "by_id", profile)
            if profile is not None:
                title = f"b2pair {args.query}, 2 exports running, {name} tree ({tree})"
                (RESULTS / f"profile-b2pair-{args.query}-{name}.txt").write_text(
                    summarise_profile(raw, title))
            runs[name].append(figures)
            print(f"round {round_no + 1} {name:4}: {round_line(figures)}", flush=True)
    result = {name: summary(r) for name, r in runs.items()}
    result["ratios_this_over_base"] = {
        k: result["this"][k] / result["base"][k]
        for k in ("req_per_s", "p50_ms", "p99_ms", "cpu_ms_per_request", "short_export_s",
                  "long_export_s")}
    result["when"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    result["base_tree"] = str(trees["base"])
    result["query"] = args.query
    name = "b2pair.json" if args.query == "list" else f"b2pair-{args.query}.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    for key, ratio in result["ratios_this_over_base"].items():
        print(f"{key}: this/base = {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
