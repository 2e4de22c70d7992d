"""B2 API under load: wrk, 50 keep-alive connections, 20 s per case.

Cases: getExportVideoStatus by id, and the full list with 100 exports in history; each idle and
while two exports run (a feeder thread keeps two exports in flight: create, wait, remove).
"""

from __future__ import annotations

import re
import resource
import subprocess
import threading
import time

from bench.archive import LONG_ID, SHORT_ID, Archive
from bench.server import Client, Server

CONNECTIONS = 50
HISTORY = 100


def parse_wrk(text: str) -> dict:
    """Requests/s and latency percentiles from ``wrk --latency`` output."""
    def ms(value: str, unit: str) -> float:
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    out: dict = {"req_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))}
    for pct in ("50", "90", "99"):
        match = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        out[f"p{pct}_ms"] = ms(*match.groups())
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    out["non_2xx"] = int(errors.group(1)) if errors else 0
    socket_errors = re.search(r"Socket errors:.*", text)
    out["socket_errors"] = socket_errors.group(0) if socket_errors else ""
    total = re.search(r"(\d+) requests in", text)
    out["requests"] = int(total.group(1)) if total else 0
    return out


def wrk(port: int, query: str, duration_s: int, threads: int) -> dict:
    """wrk's figures, and the CPU seconds wrk itself used (it shares the cores with the server
    and the exports: a faster server makes it receive more answers)."""
    url = f"http://127.0.0.1:{port}/command?command={query}"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(["wrk", f"-t{threads}", f"-c{CONNECTIONS}", f"-d{duration_s}s",
                           "--latency", "--timeout", "10s", url],
                          capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures = parse_wrk(proc.stdout)
    figures["wrk_cpu_s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return figures


class Feeder:
    """Keeps one export running per device until stopped (each: create, wait, remove)."""

    def __init__(self, port: int, ranges: list[tuple[int, int, int]]) -> None:
        self.stop_event = threading.Event()
        self.completed = 0
        #: device id → seconds from create to COMPLETED of each export ended under load
        self.export_s: dict[int, list[float]] = {r[0]: [] for r in ranges}
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._loop, args=(port, r), daemon=True)
                        for r in ranges]

    def _loop(self, port: int, rng: tuple[int, int, int]) -> None:
        client = Client(port)
        while not self.stop_event.is_set():
            try:
                began = time.monotonic()
                export_id = client.create([rng])
                client.wait(export_id, poll_s=0.02, coarse_poll_s=0.2)  # the end within 20 ms
                if not self.stop_event.is_set():  # one cut short by the end is not counted
                    self.export_s[rng[0]].append(time.monotonic() - began)
                client.remove(export_id)
                self.completed += 1
            except Exception as exc:  # report, keep the load going
                self.errors.append(repr(exc)[:300])
                time.sleep(0.5)
        client.close()

    def __enter__(self) -> Feeder:
        for thread in self.threads:
            thread.start()
        time.sleep(1.0)  # both exports admitted and running before the load starts
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=600)


def make_history(client: Client, archive: Archive, count: int) -> list[int]:
    """``count`` small real exports (2 s of the short camera), all COMPLETED."""
    lo = archive.ranges_us[SHORT_ID][0]
    ids = [client.create([(SHORT_ID, lo + i * 2_000_000, lo + (i + 1) * 2_000_000)])
           for i in range(count)]
    for export_id in ids:
        client.wait(export_id, poll_s=0.05)
    return ids


def run_b2(archive: Archive, duration_s: int, log=print) -> dict:
    long_lo, long_hi = archive.ranges_us[LONG_ID]
    short_lo, short_hi = archive.ranges_us[SHORT_ID]
    busy_ranges = [(LONG_ID, long_lo, long_hi), (SHORT_ID, short_lo, short_hi)]
    results: dict = {"connections": CONNECTIONS, "duration_s": duration_s, "history": HISTORY,
                     "cases": {}}
    with Server(archive.config, archive.data_dir, "server-b2") as server:
        client = server.client()
        before = len(client.command("getExportVideoStatus").findall("exports/export"))
        ids = make_history(client, archive, HISTORY - before) if before < HISTORY else []
        by_id = ids[len(ids) // 2] if ids else 1
        queries = {"by_id": f"getExportVideoStatus&exportid={by_id}",
                   "list": "getExportVideoStatus"}
        for load in ("idle", "2 exports running"):
            for name, query in queries.items():
                exports = len(client.command("getExportVideoStatus").findall("exports/export"))
                if load == "idle":
                    figures = wrk(server.port, query, duration_s, threads=2)
                else:
                    with Feeder(server.port, busy_ranges) as feeder:
                        figures = wrk(server.port, query, duration_s, threads=2)
                    figures["exports_completed_meanwhile"] = feeder.completed
                    figures["feeder_errors"] = feeder.errors[:3]
                figures["exports_in_history"] = exports
                results["cases"][f"{name} / {load}"] = figures
                log(f"B2 {name:5} {load:17}: {figures['req_per_s']:8.0f} req/s  "
                    f"p50 {figures['p50_ms']:.2f} ms  p99 {figures['p99_ms']:.2f} ms  "
                    f"({exports} exports in history)")
        client.close()
    cases = results["cases"]
    results["targets"] = {
        "by-id idle >= 2000 req/s": cases["by_id / idle"]["req_per_s"] >= 2000,
        "p99 <= 25 ms while exports run": all(
            c["p99_ms"] <= 25 for k, c in cases.items() if k.endswith("running")),
    }
    return results
