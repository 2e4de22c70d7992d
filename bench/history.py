"""B4 history scale: 10,000 exports in the store; paged status (limit=10) and by-id latency.

The history is filled through the engine's own store (``ExportStore.insert``, copies of a real
completed export) while no server runs, then a fresh server loads it. Latency is measured by
one keep-alive client, request after request (no concurrency), after a short warm-up.
"""

from __future__ import annotations

import copy
import statistics
import time

from bench.archive import Archive
from bench.server import Server
from sense_plugin.export.localstore import STORE_FILE
from sense_plugin.export.model import Status
from sense_plugin.export.store import ExportStore

TARGET = 10_000
SAMPLES = 500


def fill_store(archive: Archive, target: int) -> int:
    store = ExportStore(archive.data_dir / STORE_FILE)
    try:
        store._db.execute("PRAGMA synchronous=OFF")  # bench set-up only: no fsync per insert
        exports = store.load_all()
        template = next(e for e in reversed(exports) if e.status is Status.COMPLETED)
        for _ in range(target - len(exports)):
            clone = copy.deepcopy(template)
            clone.export_id = 0  # the store gives the next id
            clone.created_us += 1
            store.insert(clone)
        return len(store.load_all())
    finally:
        store.close()


def _latency(client, query: str, samples: int) -> dict:
    for _ in range(min(20, samples // 5)):  # warm-up
        client.command(query)
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        client.command(query)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"p50_ms": statistics.median(times), "p99_ms": times[int(len(times) * 0.99) - 1],
            "max_ms": times[-1], "samples": samples}


def run_b4(archive: Archive, log=print) -> dict:
    t0 = time.perf_counter()
    count = fill_store(archive, TARGET)
    fill_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with Server(archive.config, archive.data_dir, "server-b4") as server:
        startup_s = time.perf_counter() - t0
        client = server.client()
        newest = int(client.command("getExportVideoStatus&limit=1")
                     .findtext("exports/export/exportid"))
        paged = _latency(client, "getExportVideoStatus&limit=10", SAMPLES)
        paged_deep = _latency(client, "getExportVideoStatus&limit=10&offset=9000", SAMPLES)
        by_id = _latency(client, f"getExportVideoStatus&exportid={newest - TARGET // 2}",
                         SAMPLES)
        full = _latency(client, "getExportVideoStatus", 10)
        client.close()
    result = {"exports": count, "fill_s": fill_s, "server_start_s": startup_s,
              "paged_limit10": paged, "paged_limit10_offset9000": paged_deep, "by_id": by_id,
              "full_list": full}
    log(f"B4 {count} exports: paged p50 {paged['p50_ms']:.2f} ms (offset 9000: "
        f"{paged_deep['p50_ms']:.2f} ms), by-id p50 {by_id['p50_ms']:.2f} ms, full list p50 "
        f"{full['p50_ms']:.0f} ms; server start {startup_s:.1f} s")
    result["targets"] = {"paged p50 <= 10 ms": paged["p50_ms"] <= 10,
                         "by-id p50 <= 5 ms": by_id["p50_ms"] <= 5}
    return result
