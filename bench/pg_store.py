"""``python3 -m bench.pg_store``: the export job store in PostgreSQL with 10,000 exports.

One PostgreSQL (``sense_plugin.testing.postgres``, loopback, ``fsync=off`` as in the tests)
and one ``PgJobStore`` (``sense_plugin/cluster/store.py``), called from this process: store-level
figures, without HTTP or XML (the server's status commands add their own rendering).
Loads ``--exports`` exports of two device jobs each (finished ones with file facts: parts,
SHA-256, gaps), ten owners, statuses as a site's history has them; runs ``ANALYZE`` (what
autovacuum does on a real database); then times ``--calls`` calls of each:

- ``page_first``: ``page(newest_first, limit=10)`` — the first page of everybody's list;
- ``page_middle``: the same at offset ``exports / 2``;
- ``page_status``: ``page(statuses={FAILED}, newest_first, limit=10)`` (about 6 % match);
- ``page_owner``: one owner's first page;
- ``get``: ``get(id)`` of random ids;
- ``save_job``: a job's progress update (no target; a running job writes it every few s).

Each page call includes the total count. Saved to ``bench/results/pg-store.{json,txt}``.
Targets: paged p50 ≤ 10 ms, by id ≤ 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg

from bench.report import machine
from bench.timing import summary
from sense_plugin.cluster.store import PgJobStore
from sense_plugin.export.model import Export, Job, Status
from sense_plugin.export.storage import ExportQuery
from sense_plugin.filemodel import FileInfo, Gap
from sense_plugin.media.exportoptions import ExportOptions
from sense_plugin.testing.postgres import PgServer

RESULTS = Path(__file__).resolve().parent / "results"
T0 = 1_795_168_800_000_000
MINUTE_US = 60_000_000
OWNERS = [f"operator{n}" for n in range(10)]
#: (status, weight): a history mostly finished, a few failed, expired and running.
STATUSES = [(Status.COMPLETED, 80), (Status.FAILED, 6), (Status.EXPIRED, 8),
            (Status.REMOVED, 3), (Status.SYNCING, 2), (Status.PENDING, 1)]


def _files(rng: random.Random, device: str, start_us: int) -> tuple[FileInfo, ...]:
    count = rng.choice((1, 1, 1, 2, 3))
    return tuple(FileInfo(
        name=f"{device}_{k + 1}.mp4" if count > 1 else f"{device}.mp4",
        size_bytes=rng.randrange(5_000_000, 400_000_000), sha256=rng.randbytes(32).hex(),
        first_frame_us=start_us + k * 5 * MINUTE_US,
        last_frame_us=start_us + (k + 1) * 5 * MINUTE_US - 40_000,
        frame_count=7500, gaps=tuple(Gap(start_us + g * MINUTE_US, start_us + g * MINUTE_US
                                         + 3_000_000) for g in range(rng.choice((0, 0, 1, 2)))))
        for k in range(count))


def make_export(rng: random.Random, export_id: int) -> Export:
    status = rng.choices([s for s, _ in STATUSES], [w for _, w in STATUSES])[0]
    created = T0 + export_id * MINUTE_US
    export = Export(export_id=export_id, owner=rng.choice(OWNERS), created_us=created,
                    path="cases", out_base="/srv/exports/cases", fmt="mp4",
                    name=f"case {export_id}", bandwidth_limit_kbps=0,
                    options=ExportOptions(maxfilesize_mb=rng.choice((0, 100))))
    for index in range(2):
        device = f"Camera {index + 1}"
        job = Job(export_id=export_id, index=index, server_id=1001 + index,
                  device_id=100_100 + index, device_name=device, start_us=created - 15 * MINUTE_US,
                  end_us=created, status=status, started_us=created + 1_000_000)
        if status in (Status.COMPLETED, Status.EXPIRED, Status.REMOVED):
            job.parts = _files(rng, device, job.start_us)
            job.file = job.parts[0]
            job.parts = job.parts if len(job.parts) > 1 else ()
            job.progress, job.finished_us = 100, created + 20_000_000
            job.bytes_written = sum(f.size_bytes for f in job.files)
        elif status is Status.FAILED:
            job.errorcode, job.description = -1007, "Storage error: No space left on device"
            job.finished_us = created + 5_000_000
        export.jobs.append(job)
    if status not in (Status.SYNCING, Status.PENDING):
        export.finished_us = created + 21_000_000
        export.expires_us = export.finished_us + 7 * 24 * 3600 * 1_000_000
    return export


async def timed(calls: int, call: Callable[[int], Awaitable[Any]]) -> dict[str, float]:
    values = []
    for n in range(calls):
        started = time.perf_counter()
        await call(n)
        values.append((time.perf_counter() - started) * 1000)
    return summary(values, digits=3)


async def measure(url: str, exports: int, calls: int) -> dict[str, Any]:
    store = PgJobStore(url)
    await store.open()
    rng = random.Random(17)
    try:
        started = time.perf_counter()
        for _ in range(exports):
            await store.insert(make_export(rng, await store.new_id()))
        load_s = time.perf_counter() - started
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute("ANALYZE sense_exports, sense_jobs")
        ids = [rng.randrange(1, exports + 1) for _ in range(calls)]
        failed = frozenset({Status.FAILED})
        cases: dict[str, Callable[[int], Awaitable[Any]]] = {
            "page_first": lambda n: store.page(ExportQuery(newest_first=True, limit=10)),
            "page_middle": lambda n: store.page(ExportQuery(newest_first=True,
                                                            offset=exports // 2, limit=10)),
            "page_status": lambda n: store.page(ExportQuery(statuses=failed,
                                                            newest_first=True, limit=10)),
            "page_owner": lambda n: store.page(ExportQuery(owner=OWNERS[n % 10],
                                                           newest_first=True, limit=10)),
            "get": lambda n: store.get(ids[n]),
        }
        for call in cases.values():  # warm the pool and the plans
            for n in range(20):
                await call(n)
        figures = {name: await timed(calls, call) for name, call in cases.items()}
        saved = [e for e in [await store.get(i) for i in ids] if e is not None]
        figures["save_job"] = await timed(len(saved), lambda n: _progress(store, saved[n]))
        page, total = await store.page(ExportQuery(statuses=failed, limit=10))
        assert len(page) == 10 and all(e.status is Status.FAILED for e in page)
        return {"exports": exports, "jobs_per_export": 2, "calls": calls,
                "load_s": round(load_s, 1), "failed_matching": total, **figures}
    finally:
        await store.close()


async def _progress(store: PgJobStore, export: Export) -> None:
    """A progress update of one job (as a running job writes it)."""
    export.jobs[0].progress = (export.jobs[0].progress + 1) % 100
    await store.save_job(export, export.jobs[0])


def text(figures: dict[str, Any]) -> str:
    lines = [f"PgJobStore, {figures['exports']} exports x 2 jobs in PostgreSQL (store level, "
             f"loopback, one caller; loaded in {figures['load_s']} s)"]
    for name, target in (("page_first", 10), ("page_middle", 10), ("page_status", 10),
                         ("page_owner", 10), ("get", 5)):
        f = figures[name]
        verdict = "met" if f["p50_ms"] <= target else "MISSED"
        lines.append(f"  {name:12} n={f['n']:4}  p50 {f['p50_ms']:7.2f} ms  p99 "
                     f"{f['p99_ms']:7.2f} ms  max {f['max_ms']:7.2f} ms  "
                     f"(p50 target <= {target} ms: {verdict})")
    f = figures["save_job"]
    lines.append(f"  {'save_job':12} n={f['n']:4}  p50 {f['p50_ms']:7.2f} ms  p99 "
                 f"{f['p99_ms']:7.2f} ms  max {f['max_ms']:7.2f} ms  (a transaction: lock, "
                 "update, combined status; no target)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--exports", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="sense-pg-"))
    pg = PgServer(root)
    try:
        pg.create()
        figures = asyncio.run(measure(pg.url, args.exports, args.calls))
    finally:
        pg.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
    report = text(figures)
    print(report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pg-store.txt").write_text(report + "\n")
    (RESULTS / "pg-store.json").write_text(
        json.dumps({"machine": machine(), **figures}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
