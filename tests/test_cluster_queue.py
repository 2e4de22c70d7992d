"""procrastinate as the device-job transport: one queue per server (docs/site.rst).

The test process plays server A: it defers ``sense.probe`` jobs onto server B's queue; B is
a real ``sense-plugin serve`` whose worker takes them. Then B is killed mid-job (the job
restarts when B is back) and PostgreSQL crashes and restarts (the worker carries on).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sense_plugin.testing.postgres import PgServer
from sense_plugin.testing.siteservers import BASE_SERVER_ID, start_site
from tests.pgserver import pg_server  # noqa: F401  (the fixture)

psycopg = pytest.importorskip("psycopg", reason="needs psycopg (the cluster extra)")
pytest.importorskip("procrastinate", reason="needs procrastinate (the cluster extra)")

from procrastinate.exceptions import ConnectorException  # noqa: E402

from sense_plugin.cluster.queue import defer_probe, make_app  # noqa: E402

B = BASE_SERVER_ID


def defer(url: str, server_id: int, sleep_s: float = 0.0) -> int:
    async def run() -> int:
        app = make_app(url)
        async with app.open_async():
            return await defer_probe(app, server_id, sleep_s)

    return asyncio.run(run())


def row(url: str, query: str, *args: Any) -> tuple[Any, ...] | None:
    with psycopg.connect(url, autocommit=True) as conn:
        result: tuple[Any, ...] | None = conn.execute(query, args).fetchone()
        return result


def wait_for(check: Callable[[], Any], timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = check()
        except (psycopg.OperationalError, ConnectorException):
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def probe(url: str, job_id: int) -> tuple[Any, ...] | None:
    return row(url, "SELECT serverid, attempts, finished_at IS NOT NULL, "
               "extract(epoch FROM started_at - deferred_at) FROM sense_probes "
               "WHERE job_id = %s", job_id)


def job_status(url: str, job_id: int) -> str:
    found = row(url, "SELECT status FROM procrastinate_jobs WHERE id = %s", job_id)
    assert found is not None
    return str(found[0])


def test_job_runs_on_the_owning_server_and_survives_kills(
        pg_server: PgServer, tmp_path: Path) -> None:  # noqa: F811
    url = pg_server.url
    (server,) = start_site(tmp_path, url, count=1, heartbeat_s=0.5)
    try:
        job = defer(url, B)
        serverid, attempts, finished, latency_s = wait_for(
            lambda: (p := probe(url, job)) and p[2] and p)
        assert (int(serverid), attempts, finished) == (B, 1, True)
        assert latency_s < 5  # the figure itself is bench/cluster_queue.py's
        wait_for(lambda: job_status(url, job) == "succeeded")
        other = defer(url, B + 1)  # a server that is not running: its job waits
        time.sleep(1.0)
        assert job_status(url, other) == "todo" and probe(url, other) is None

        long_job = defer(url, B, sleep_s=3.0)
        wait_for(lambda: probe(url, long_job))
        server.stop(signal.SIGKILL)  # killed mid-job
        assert job_status(url, long_job) == "doing"
        server.start()  # back: the job restarts from the beginning, and completes
        done = wait_for(lambda: (p := probe(url, long_job)) and p[2] and p)
        assert done[1] == 2, "the job ran again after the kill"
        wait_for(lambda: job_status(url, long_job) == "succeeded")

        pg_server.kill()  # PostgreSQL crashes and comes back: the worker carries on
        time.sleep(1.0)
        pg_server.start()
        after = wait_for(lambda: defer(url, B))
        assert wait_for(lambda: (p := probe(url, after)) and p[2] and p)[1] == 1
        assert server.proc is not None and server.proc.poll() is None
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()
