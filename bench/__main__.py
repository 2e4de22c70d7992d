"""``python -m bench``: run B1–B4 against a real server and write bench/results/latest.*.

Options: ``--only b1,jobs,b3``, ``--rounds N`` (B1, default 5), ``--duration S`` (B2, default 20),
``--archive full|tiled``, ``--unique-minutes M`` (tiled mode). See bench/run for the set-up.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time

from bench.archive import BENCH_DIR, DATA_DIR, ensure_archive
from bench.report import machine, save

RESULTS_DIR = BENCH_DIR / "results"


def log(text: str) -> None:
    print(text, flush=True)


def reset_exports() -> None:
    """Each bench run starts with an empty export history."""
    for name in ("exports.sqlite3", "exports.sqlite3-wal", "exports.sqlite3-shm"):
        (DATA_DIR / name).unlink(missing_ok=True)
    shutil.rmtree(DATA_DIR / "exports", ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--only", default="b1,jobs,b2,b3,b4")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--archive", choices=("full", "tiled"), default="tiled")
    parser.add_argument("--unique-minutes", type=float, default=10)
    args = parser.parse_args(argv)
    started = time.monotonic()
    only = set(args.only.lower().split(","))
    res: dict = {"machine": machine()}
    log(f"bench: {res['machine']['cores']} cores, "
        f"load average {res['machine']['load_average_at_start']}")
    cached = (BENCH_DIR / "cache" / "archive.json").exists()
    archive = ensure_archive(args.archive, args.unique_minutes, log=log)
    recipe = (f"2 cameras 1920x1080 25 fps 4 Mbit/s H.264, GOP 2 s, 10 s MP4 segments; "
              f"camera 1 60 min, camera 2 10 min; mode {args.archive}")
    if args.archive == "tiled":
        recipe += (f" ({args.unique_minutes:g} min per camera encoded by demo-archive, the rest "
                   f"stream copies with rewritten names and creation_time)")
    res["archive"] = {"recipe": recipe, "build_s": archive.build_s,
                      "cached": cached and archive.build_s >= 0, "mode": args.archive}
    reset_exports()
    if "b1" in only:
        from bench.throughput import run_b1
        res["b1"] = run_b1(archive, args.rounds, log=log)
    if "jobs" in only:
        from bench.jobs import run_jobs
        res["jobs"] = run_jobs(archive, max(3, args.rounds // 2), log=log)
    if "b2" in only:
        from bench.load import run_b2
        res["b2"] = run_b2(archive, args.duration, log=log)
    if "b3" in only:
        from bench.memory import run_b3
        res["b3"] = run_b3(archive, log=log)
    if "b4" in only:
        from bench.history import run_b4
        if "b2" not in only:  # B4 clones a real completed export
            from bench.load import make_history
            from bench.server import Server
            with Server(archive.config, archive.data_dir, "server-b4-seed") as server:
                client = server.client()
                make_history(client, archive, 1)
                client.close()
        res["b4"] = run_b4(archive, log=log)
    res["total_s"] = time.monotonic() - started
    path = save(res, RESULTS_DIR)
    log("")
    log(path.read_text())
    log(f"bench: results in {RESULTS_DIR}/latest.{{json,md,png}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
