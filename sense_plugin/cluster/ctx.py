"""The cluster's lifetime inside the server: pool, migrations, heartbeat, queue worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import psycopg
from aiohttp import web

from sense_plugin.api.keys import ARCHIVE, CONFIG
from sense_plugin.cluster.db import open_pool, redacted
from sense_plugin.cluster.files import setup_files
from sense_plugin.cluster.internal import setup_internal
from sense_plugin.cluster.keys import SITE
from sense_plugin.cluster.nodes import Site
from sense_plugin.cluster.queue import make_app, recover_loop, run_worker
from sense_plugin.cluster.relay import relay_ctx
from sense_plugin.cluster.schema import upgrade

log = logging.getLogger(__name__)
#: Probe jobs one server runs at once (device jobs will use [export] max_concurrent_jobs).
WORKER_CONCURRENCY = 4


def setup_cluster(app: web.Application) -> None:
    """Mount ``/cluster/`` and start the cluster after the archive (``[cluster]`` set)."""
    cluster = app[CONFIG].cluster
    assert cluster is not None
    setup_internal(app, cluster.site_secret)
    setup_files(app)  # GET|HEAD /cluster/files/...: downloads from any server
    app.cleanup_ctx.extend([cluster_ctx, relay_ctx])


async def cluster_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    cluster = config.cluster
    assert cluster is not None
    pool = await open_pool(cluster.database_url)
    try:
        async with pool.connection() as conn:
            await upgrade(conn)
        site = Site(config, pool, app[ARCHIVE].device_status)
        await site.beat()
        app[SITE] = site
        queue = make_app(cluster.database_url)
        await queue.open_async()
    except BaseException:
        await pool.close()
        raise
    server_id = config.server.server_id
    log.info("site database %s: server %d online, queue server-%d",
             redacted(cluster.database_url), server_id, server_id)
    tasks = [asyncio.create_task(site.run(), name="cluster-heartbeat"),
             asyncio.create_task(run_worker(queue, cluster, server_id, pool,
                                            WORKER_CONCURRENCY), name="cluster-worker"),
             asyncio.create_task(recover_loop(queue, cluster, server_id),
                                 name="cluster-recover")]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    with contextlib.suppress(psycopg.Error, TimeoutError, OSError):
        async with asyncio.timeout(3):
            await site.stopped()
    await queue.close_async()
    await pool.close()
