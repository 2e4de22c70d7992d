"""B3 memory: peak RSS (VmHWM) of the server and its worker processes, 10 vs 60 minutes.

Each span gets a fresh server (so the high-water marks belong to that export alone); after the
export completes, VmHWM is read from /proc for the server and every descendant process.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.archive import LONG_ID, Archive
from bench.server import Server

SPANS_MIN = (10, 60)


def _status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def descendants(pid: int) -> list[tuple[int, int]]:
    """``(pid, parent pid)`` of every descendant of ``pid``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for child in children.get(parent, []):
            found.append((child, parent))
            todo.append(child)
    return found


def peaks_mb(pid: int) -> dict[str, float]:
    """VmHWM in MB of the server and each descendant, keyed by a short role name."""
    out = {}
    roles = {pid: "server"}
    for proc, parent in [(pid, 0), *descendants(pid)]:
        try:
            status = _status(proc)
            cmdline = Path(f"/proc/{proc}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if proc != pid:  # forkserver children inherit its command line: tell them by parent
            roles[proc] = ("worker" if roles.get(parent) == "forkserver"
                           else "forkserver" if "forkserver" in cmdline
                           else "resource_tracker" if "resource_tracker" in cmdline else "child")
        out[f"{roles[proc]}:{proc}"] = int(status["VmHWM"].split()[0]) / 1024
    return out


def run_b3(archive: Archive, log=print) -> dict:
    lo = archive.ranges_us[LONG_ID][0]
    results: dict = {"spans": {}}
    for minutes in SPANS_MIN:
        with Server(archive.config, archive.data_dir, f"server-b3-{minutes}") as server:
            client = server.client()
            client.command("getExportVideoStatus")
            before = peaks_mb(server.pid)
            t0 = time.perf_counter()
            export_id = client.create([(LONG_ID, lo, lo + minutes * 60_000_000)])
            root = client.wait(export_id, poll_s=0.05)
            wall = time.perf_counter() - t0
            size = sum(int(s) for s in root.xpath("//file/size/text()"))
            after = peaks_mb(server.pid)
            client.remove(export_id)
            client.close()
        server_mb = next(v for k, v in after.items() if k.startswith("server:"))
        worker_mb = max((v for k, v in after.items() if k.startswith("worker:")), default=0.0)
        results["spans"][f"{minutes} min"] = {
            "wall_s": wall, "output_bytes": size, "server_peak_mb": server_mb,
            "worker_peak_mb": worker_mb, "sum_peak_mb": sum(after.values()),
            "before_export": before, "after_export": after}
        log(f"B3 {minutes:2d} min: server peak {server_mb:.1f} MB, worker peak {worker_mb:.1f} MB, "
            f"sum {sum(after.values()):.1f} MB ({size / 1e6:.0f} MB exported in {wall:.1f} s)")
    a, b = (results["spans"][f"{m} min"] for m in SPANS_MIN)
    results["growth_mb"] = {k: b[k] - a[k] for k in ("server_peak_mb", "worker_peak_mb",
                                                      "sum_peak_mb")}
    results["targets"] = {"growth <= 30 MB (10 -> 60 min)":
                          results["growth_mb"]["sum_peak_mb"] <= 30}
    return results
