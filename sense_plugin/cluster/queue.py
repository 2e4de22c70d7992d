"""The device-job transport: procrastinate, one queue per server (``server-<serverid>``).

Any server defers a job onto the queue of the server that holds the device; only that
server's worker takes jobs from it (LISTEN/NOTIFY wakes it, polling is the fallback). Each
worker heartbeats in ``procrastinate_workers``; a job left ``doing`` by a worker that stopped
heartbeating (a killed server) is put back to ``todo`` on its own queue by ``recover_stalled``
when that server is back, so it restarts from the beginning. Today one task is registered:
``sense.probe``, which records when it started on which server (``sense_probes``) and proves
the mechanics; the export engine's device jobs come next (docs/site.rst).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

import procrastinate
import psycopg
from procrastinate.connector import Notify
from procrastinate.exceptions import ProcrastinateException
from psycopg_pool import AsyncConnectionPool

from sense_plugin.configmodel import ClusterConfig

log = logging.getLogger(__name__)
PROBE_TASK = "sense.probe"
#: One device job of an export, run by the server holding the device (its queue).
DEVICE_TASK = "sense.device_job"
#: A worker that stopped is restarted after this pause (a PostgreSQL restart, say).
RESTART_PAUSE_S = 1.0

RECORD_START = """
INSERT INTO sense_probes (job_id, serverid, deferred_at, started_at)
VALUES (%s, %s, to_timestamp(%s), clock_timestamp())
ON CONFLICT (job_id) DO UPDATE SET started_at = clock_timestamp(), finished_at = NULL,
    serverid = excluded.serverid, attempts = sense_probes.attempts + 1
"""


def queue_name(server_id: int) -> str:
    """The queue of the server ``server_id``."""
    return f"server-{server_id}"


class _Connector(procrastinate.PsycopgConnector):
    """procrastinate's connector whose LISTEN connection always comes back.

    procrastinate 3.10 re-opens the LISTEN connection once when it breaks; if PostgreSQL is
    still down then, the listener ends and the worker only polls from then on. Here the
    listener retries every ``RESTART_PAUSE_S`` for as long as the worker runs.
    """

    async def listen_notify(self, on_notification: Notify, channels: Iterable[str]) -> None:
        channels = list(channels)
        while True:
            try:
                await super().listen_notify(on_notification=on_notification,
                                            channels=channels)
            except (ProcrastinateException, psycopg.Error, OSError) as exc:
                log.debug("LISTEN connection lost (%s); retrying", exc)
            await asyncio.sleep(RESTART_PAUSE_S)


def make_app(database_url: str) -> procrastinate.App:
    """A procrastinate app on the site database with the sense tasks registered."""
    connector = _Connector(
        conninfo=database_url, min_size=1, max_size=6, timeout=10.0,
        kwargs={"connect_timeout": 5})  # procrastinate sets the pool's connection check
    app = procrastinate.App(connector=connector)
    app.task(name=PROBE_TASK, pass_context=True)(_probe)
    app.task(name=DEVICE_TASK, pass_context=True)(_device_job)
    return app


async def _device_job(context: procrastinate.JobContext, export_id: int, index: int) -> None:
    """Run the device job on this server (the engine's site role); return once it settled."""
    run: Any = context.additional_context["run_device_job"]
    await run(export_id, index)


async def _probe(context: procrastinate.JobContext, deferred_at: float, sleep_s: float = 0.0
                 ) -> None:
    """Record the start on this server, sleep ``sleep_s`` (a long job), record the end."""
    extra: dict[str, Any] = context.additional_context
    pool: AsyncConnectionPool = extra["pool"]
    job_id = context.job.id
    async with pool.connection() as conn:
        await conn.execute(RECORD_START, (job_id, extra["server_id"], deferred_at))
    await asyncio.sleep(sleep_s)
    async with pool.connection() as conn:
        await conn.execute("UPDATE sense_probes SET finished_at = clock_timestamp() "
                           "WHERE job_id = %s", (job_id,))


async def defer_probe(app: procrastinate.App, server_id: int, sleep_s: float = 0.0) -> int:
    """Put a probe job on server ``server_id``'s queue; its job id."""
    deferrer = app.configure_task(PROBE_TASK, queue=queue_name(server_id))
    return await deferrer.defer_async(deferred_at=time.time(), sleep_s=sleep_s)


async def recover_stalled(app: procrastinate.App, server_id: int, stalled_s: float) -> int:
    """Put back to ``todo`` this server's jobs whose worker stopped heartbeating."""
    manager = app.job_manager
    jobs = await manager.get_stalled_jobs(queue=queue_name(server_id),
                                          seconds_since_heartbeat=stalled_s)
    count = 0
    for job in jobs:
        await manager.retry_job(job)
        count += 1
    if count:
        log.info("queue %s: restarted %d job(s) of a stopped worker", queue_name(server_id),
                 count)
    return count


async def run_worker(app: procrastinate.App, cluster: ClusterConfig, server_id: int,
                     pool: AsyncConnectionPool, concurrency: int,
                     context: dict[str, Any] | None = None) -> None:
    """Run this server's worker until cancelled, restarting it when the database fails."""
    stalled_s = 3 * cluster.heartbeat_s
    while True:
        try:
            await recover_stalled(app, server_id, stalled_s)
            await app.run_worker_async(
                queues=[queue_name(server_id)], name=f"sense-{server_id}",
                concurrency=concurrency, install_signal_handlers=False,
                update_heartbeat_interval=cluster.heartbeat_s,
                stalled_worker_timeout=stalled_s, fetch_job_polling_interval=1.0,
                shutdown_graceful_timeout=5.0,
                additional_context={"pool": pool, "server_id": server_id,
                                    **(context or {})})
            return
        except (ProcrastinateException, psycopg.Error, OSError) as exc:
            log.warning("queue worker stopped (%s); restarting in %g s", exc, RESTART_PAUSE_S)
        await asyncio.sleep(RESTART_PAUSE_S)


async def recover_loop(app: procrastinate.App, cluster: ClusterConfig, server_id: int) -> None:
    """Check for this server's stalled jobs every heartbeat (a quick restart of a killed
    server comes back before its old worker counts as stalled)."""
    while True:
        await asyncio.sleep(cluster.heartbeat_s)
        try:
            await recover_stalled(app, server_id, 3 * cluster.heartbeat_s)
        except (ProcrastinateException, psycopg.Error, OSError) as exc:
            log.debug("stalled-job check failed: %s", exc)
