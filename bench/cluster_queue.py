"""``python3 -m bench.cluster_queue``: defer → start latency of a device job on another server.

One PostgreSQL (``sense_plugin.testing.postgres``) and three real ``sense-plugin serve``
processes of one site on loopback. This process plays the server that accepts a request: it defers
``sense.probe`` jobs (``sense_plugin.cluster.queue``) round-robin onto the three servers'
queues, and each probe records, with PostgreSQL's clock, when it started on its server
(same machine, same clock as the defer stamp). Measured, and saved to
``bench/results/cluster-queue.{json,txt}``:

- ``idle``: one job at a time (the next is deferred when the previous has started): the
  LISTEN/NOTIFY wake-up path, p50/p99;
- ``burst``: 60 jobs deferred at once (20 per server), from defer to start;
- ``after_pg_restart``: idle again after PostgreSQL was SIGKILLed and restarted while the
  servers ran (the LISTEN connection must come back, or the 1 s polling would show).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.report import machine
from bench.timing import summary
from sense_plugin.cluster.queue import defer_probe, make_app
from sense_plugin.testing.postgres import PgServer
from sense_plugin.testing.siteservers import BASE_SERVER_ID, start_site

RESULTS = Path(__file__).resolve().parent / "results"


async def latencies(url: str, job_ids: list[int], timeout_s: float = 60) -> list[float]:
    """Defer-to-start of each job in ms, once all have started."""
    deadline = time.monotonic() + timeout_s
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        while True:
            cur = await conn.execute(
                "SELECT extract(epoch FROM started_at - deferred_at) * 1000 FROM sense_probes "
                "WHERE job_id = ANY(%s)", (job_ids,))
            rows = await cur.fetchall()
            if len(rows) == len(job_ids):
                return [float(r[0]) for r in rows]
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(rows)} of {len(job_ids)} jobs started")
            await asyncio.sleep(0.01)


async def idle(url: str, servers: int, rounds: int) -> list[float]:
    app = make_app(url)
    result: list[float] = []
    async with app.open_async():
        for i in range(rounds):
            job = await defer_probe(app, BASE_SERVER_ID + i % servers)
            result += await latencies(url, [job])
    return result


async def burst(url: str, servers: int, count: int) -> list[float]:
    app = make_app(url)
    async with app.open_async():
        jobs = await asyncio.gather(*(defer_probe(app, BASE_SERVER_ID + i % servers)
                                      for i in range(count)))
    return await latencies(url, list(jobs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--burst", type=int, default=60)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="sense-pg-"))
    pg = PgServer(root)
    pg.create()
    site = []
    try:
        site = start_site(root, pg.url, heartbeat_s=1.0)
        time.sleep(1.0)  # the workers are listening
        figures: dict[str, Any] = {"servers": len(site)}
        figures["idle"] = summary(asyncio.run(idle(pg.url, len(site), args.rounds)))
        figures["burst"] = summary(asyncio.run(burst(pg.url, len(site), args.burst)))
        pg.kill()
        time.sleep(2.0)
        pg.start()
        time.sleep(3.0)  # heartbeats and pools reconnect
        figures["after_pg_restart"] = summary(asyncio.run(idle(pg.url, len(site), 30)))
    finally:
        for server in site:
            if server.proc is not None and server.proc.poll() is None:
                server.stop()
        pg.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
    lines = [f"cluster queue: defer -> start on the owning server ({len(site)} servers, "
             "procrastinate LISTEN/NOTIFY, loopback)"]
    for name in ("idle", "burst", "after_pg_restart"):
        f = figures[name]
        lines.append(f"  {name:17} n={f['n']:4}  p50 {f['p50_ms']:8.2f} ms  "
                     f"p99 {f['p99_ms']:8.2f} ms  max {f['max_ms']:8.2f} ms")
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cluster-queue.txt").write_text(text + "\n")
    (RESULTS / "cluster-queue.json").write_text(
        json.dumps({"machine": machine(), **figures}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
