"""The cluster's lifetime inside the server: pool, migrations, heartbeat, job store, queue.

Two cleanup contexts around the export engine's: :func:`site_ctx` (before it) opens the
site database, its schema, the heartbeat and the shared job store the engine is built on;
:func:`site_queue_ctx` (after it) runs this server's queue worker, which hands device jobs
to the engine's site role, and the per-second upkeep of the site's exports (``sitejobs``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import psycopg
from aiohttp import web

from sense_plugin.api.keys import ARCHIVE, CONFIG, ENGINE, EXECUTOR
from sense_plugin.api.site.holderfiles import setup_files
from sense_plugin.api.site.internal import setup_internal
from sense_plugin.api.site.relay import relay_ctx
from sense_plugin.cluster.db import open_pool, redacted
from sense_plugin.cluster.keys import SITE, SITE_STORE
from sense_plugin.cluster.nodes import Site
from sense_plugin.cluster.queue import make_app, recover_loop, run_worker
from sense_plugin.cluster.schema import upgrade
from sense_plugin.cluster.sitejobs import SiteJobs
from sense_plugin.cluster.sitestore import SiteJobStore
from sense_plugin.export import ids

log = logging.getLogger(__name__)
#: Probe jobs one server runs at once, beyond its device jobs.
WORKER_CONCURRENCY = 4


def setup_cluster(app: web.Application, engine_ctx: object) -> None:
    """Mount ``/cluster/`` and put the site's contexts around ``engine_ctx``."""
    cluster = app[CONFIG].cluster
    assert cluster is not None
    setup_internal(app, cluster.site_secret)
    setup_files(app)  # GET|HEAD /cluster/files/...: downloads from any server
    contexts = app.cleanup_ctx
    where = list(contexts).index(engine_ctx)  # type: ignore[arg-type]
    contexts.insert(where, site_ctx)
    contexts.insert(where + 2, site_queue_ctx)
    contexts.append(relay_ctx)


async def site_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    cluster = config.cluster
    assert cluster is not None
    pool = await open_pool(cluster.database_url)
    queue = make_app(cluster.database_url)
    try:
        async with pool.connection() as conn:
            await upgrade(conn)
        site = Site(config, pool, app[ARCHIVE].device_status)
        await site.beat()
        app[SITE] = site
        await queue.open_async()
        on_disk, _ = await asyncio.get_running_loop().run_in_executor(
            app[EXECUTOR], ids.scan_export_dirs, config.server.export_roots)
        app[SITE_STORE] = SiteJobStore(cluster.database_url, queue, config.server.server_id,
                                       id_floor=max(on_disk, default=0))
    except BaseException:
        await queue.close_async()
        await pool.close()
        raise
    server_id = config.server.server_id
    log.info("site database %s: server %d online, queue server-%d",
             redacted(cluster.database_url), server_id, server_id)
    heartbeat = asyncio.create_task(site.run(), name="cluster-heartbeat")
    yield
    heartbeat.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await heartbeat
    with contextlib.suppress(psycopg.Error, TimeoutError, OSError):
        async with asyncio.timeout(3):
            await site.stopped()
    await app[SITE_STORE].close()  # closed with the engine already; here after a failed start
    await queue.close_async()
    await pool.close()


async def site_queue_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    cluster = config.cluster
    assert cluster is not None
    store, role, site = app[SITE_STORE], app[ENGINE].site_role, app[SITE]
    assert role is not None  # the engine was built on the site's store
    server_id = config.server.server_id
    upkeep = SiteJobs(role, store, cluster.node_timeout_s)
    concurrency = WORKER_CONCURRENCY + config.export.max_concurrent_jobs
    tasks = [asyncio.create_task(run_worker(store.queue, cluster, server_id, site.pool,
                                            concurrency,
                                            {"run_device_job": role.run_device_job}),
                                 name="cluster-worker"),
             asyncio.create_task(recover_loop(store.queue, cluster, server_id),
                                 name="cluster-recover"),
             asyncio.create_task(upkeep.run(), name="cluster-upkeep")]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    await upkeep.close()
