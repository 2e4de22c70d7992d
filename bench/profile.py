"""``python -m bench.profile``: py-spy profiles behind the misses (B1 export, B2 list, B4 paging).

Records collapsed stacks of the server and its worker processes with ``py-spy record
--subprocesses`` while (1) a 10-minute B1 export runs three times, (2) wrk loads the full
status list of 100 exports, (3) wrk loads status by id; prints the top self-time frames of each and
saves summaries as bench/results/profile-*-summary.txt (raw stacks in bench/cache/).
"""

from __future__ import annotations

import collections
import subprocess
import sys
import time

from bench.__main__ import reset_exports
from bench.archive import BENCH_DIR, CACHE_DIR, LONG_ID, ensure_archive
from bench.load import make_history, wrk
from bench.server import Server

RESULTS = BENCH_DIR / "results"


def record(pid: int, name: str, action) -> str:
    out = CACHE_DIR / f"profile-{name}.txt"  # raw collapsed stacks (large): not committed
    spy = subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--subprocesses", "--rate",
                            "200", "--format", "raw", "--output", str(out), "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    action()
    spy.send_signal(2)
    spy.wait(timeout=60)
    return summarize(out, name)


def summarize(path, name: str, top: int = 15) -> str:
    self_counts: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        n = int(count)
        total += n
        self_counts[frames[-1]] += n
        for frame in set(frames):
            incl[frame] += n
    lines = [f"== {name}: {total} samples; top self time"]
    lines += [f"{c / total:6.1%}  {f}" for f, c in self_counts.most_common(top)]
    lines += ["-- top inclusive (sense_plugin frames)"]
    lines += [f"{c / total:6.1%}  {f}" for f, c in incl.most_common(200)
              if "sense_plugin" in f][:top]
    text = "\n".join(lines)
    (RESULTS / f"profile-{name}-summary.txt").write_text(text + "\n")
    return text


def main() -> int:
    mode, unique = (sys.argv[1], float(sys.argv[2])) if len(sys.argv) > 2 else ("tiled", 10.0)
    archive = ensure_archive(mode, unique)
    lo = archive.ranges_us[LONG_ID][0]
    reset_exports()
    with Server(archive.config, archive.data_dir, "server-profile") as server:
        client = server.client()
        by_id = make_history(client, archive, 100)[50]  # the B2 history

        def exports() -> None:
            for _ in range(3):
                export_id = client.create([(LONG_ID, lo, lo + 600_000_000)])
                client.wait(export_id, poll_s=0.002)
                client.remove(export_id)

        print(record(server.pid, "b1-export", exports))
        print(record(server.pid, "b2-list",
                     lambda: wrk(server.port, "getExportVideoStatus", 8, threads=1)))
        print(record(server.pid, "b2-by-id",
                     lambda: wrk(server.port, f"getExportVideoStatus&exportid={by_id}", 8,
                                 threads=1)))
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
