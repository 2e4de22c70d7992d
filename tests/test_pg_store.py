"""The export job store in PostgreSQL (``cluster.store.PgJobStore``).

The store contract (``tests/store_contract.py``) runs against a real PostgreSQL, a fresh
database per test; then what only a site database has: two servers sharing one id sequence,
an id floor, a crash and restart of PostgreSQL under the store, a statement that would wait
forever, and a schema newer than this code. (A database unreachable at start is
``DatabaseUnavailableError`` from ``db.open_pool``: ``tests/test_cluster_db.py``.)
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator

import pytest

from sense_plugin.testing.postgres import PgServer
from tests.pgserver import pg_module_server, pg_server  # noqa: F401  (fixtures)
from tests.store_contract import *  # noqa: F403  (the contract's tests run here)
from tests.store_contract import T0, insert, make_export

psycopg = pytest.importorskip("psycopg", reason="needs psycopg (the cluster extra)")
pytest.importorskip("procrastinate", reason="needs procrastinate (the cluster extra)")

from sense_plugin.cluster.errors import SchemaTooNewError  # noqa: E402
from sense_plugin.cluster.schema import LATEST  # noqa: E402
from sense_plugin.cluster.store import STORE_TIMEOUT_S, PgJobStore  # noqa: E402
from sense_plugin.errors import NotAvailableError, ResultCode  # noqa: E402
from sense_plugin.export.model import Status  # noqa: E402
from sense_plugin.export.storage import ExportQuery  # noqa: E402

_names = itertools.count(1)
#: An answer within the store's bound (plus slack for a loaded machine): never a hang.
ANSWER_WITHIN_S = STORE_TIMEOUT_S + 3


@pytest.fixture
def database_url(pg_module_server: PgServer) -> str:  # noqa: F811
    """A new, empty database on the module's server."""
    return pg_module_server.create_database(f"store_{next(_names)}")


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[PgJobStore]:
    """The contract's ``store``: an opened PgJobStore on an empty database."""
    opened = PgJobStore(database_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def test_two_servers_share_one_id_sequence_above_their_floors(database_url: str) -> None:
    first, second = PgJobStore(database_url), PgJobStore(database_url, id_floor=500)
    await asyncio.gather(first.open(), second.open())  # both migrate at once: once each
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            versions = conn.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
        assert versions == [(v,) for v in range(1, LATEST + 1)]
        calls = [s.new_id() for _ in range(60) for s in (first, second)]
        ids = await asyncio.gather(*calls)
        assert len(set(ids)) == len(ids) == 120
        assert min(ids) > 500  # the second server's floor holds for the first one's ids too
        first.id_floor = 10_000  # more numbered directories appeared on the first server
        raised = await asyncio.gather(*(s.new_id() for _ in range(20) for s in (first, second)))
        assert len(set(raised) | set(ids)) == 160 and min(raised[0::2]) > 10_000
        assert min(await asyncio.gather(first.new_id(), second.new_id())) > max(raised)
        export = await insert(first, "alice")  # written by one server, read by the other
        assert await second.get(export.export_id) == export
    finally:
        await asyncio.gather(first.close(), second.close())


async def test_servers_with_stale_copies_still_store_the_right_combined_status(
        database_url: str) -> None:
    first, second = PgJobStore(database_url), PgJobStore(database_url)
    await first.open()
    await second.open()
    try:
        for other_job, combined in ((Status.COMPLETED, Status.COMPLETED),
                                    (Status.FAILED, Status.FAILED)):
            export = await insert(first)
            mine, theirs = export, await second.get(export.export_id)
            assert theirs is not None
            mine.jobs[0].status, theirs.jobs[1].status = Status.SYNCING, other_job
            await asyncio.gather(first.save_job(mine, mine.jobs[0]),
                                 second.save_job(theirs, theirs.jobs[1]))
            mine.jobs[0].status = Status.COMPLETED  # mine still thinks job 1 is PENDING
            await first.save_job(mine, mine.jobs[0])
            assert (await first.page(ExportQuery(statuses=frozenset({Status.SYNCING}))))[1] == 1
            mine.finished_us = mine.expires_us = T0
            await first.save_export(mine)  # the finaliser's copy is stale: status from rows
            found, total = await second.page(ExportQuery(statuses=frozenset({combined})))
            assert total == 1 and [j.status for j in found[0].jobs] == [Status.COMPLETED,
                                                                         other_job]
            await first.delete([export.export_id])
    finally:
        await asyncio.gather(first.close(), second.close())


async def test_a_postgresql_crash_is_a_quick_coded_error_then_the_store_reconnects(
        pg_server: PgServer) -> None:  # noqa: F811
    store = PgJobStore(pg_server.url)
    await store.open()
    try:
        kept = await insert(store, "alice")
        pg_server.kill()
        for action in (store.new_id, lambda: store.get(kept.export_id),
                       lambda: store.page(ExportQuery(limit=10)),
                       lambda: store.insert(make_export(kept.export_id + 1))):
            started = time.monotonic()
            with pytest.raises(NotAvailableError) as caught:
                await action()
            assert time.monotonic() - started < ANSWER_WITHIN_S
            assert caught.value.code == ResultCode.NOT_AVAILABLE
            text = caught.value.description
            assert "job store (PostgreSQL postgresql://sense:***@127.0.0.1" in text
            assert "incident" in text and ":sense@" not in text
        assert "Connection refused" in text  # once known down, calls say why at once
        pg_server.start()
        assert await store.get(kept.export_id) == kept  # nothing accepted was lost
        later = await insert(store, "bob")  # the same store object: the pool reconnected
        assert later.export_id > kept.export_id
        pg_server.stop("fast")  # a clean shutdown too
        with pytest.raises(NotAvailableError):
            await store.count_by_status()
        pg_server.start()
        assert (await store.page(ExportQuery()))[1] == 2
    finally:
        await store.close()


async def test_a_statement_that_would_wait_is_cut_off(store: PgJobStore, database_url: str
                                                      ) -> None:
    export = await insert(store)
    async with await psycopg.AsyncConnection.connect(database_url) as blocker:
        await blocker.execute("LOCK TABLE sense_exports IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        with pytest.raises(NotAvailableError, match="could not read an export .*statement"):
            await store.get(export.export_id)
        assert time.monotonic() - started < ANSWER_WITHIN_S
        await blocker.rollback()
    assert await store.get(export.export_id) == export


async def test_open_refuses_a_newer_schema(store: PgJobStore, database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version (version, description) VALUES (99, 'x')")
    newer = PgJobStore(database_url)
    with pytest.raises(SchemaTooNewError, match=f"version 99, newer than .* knows \\({LATEST}"):
        await newer.open()
    assert await store.count_by_status()  # the open store is untouched
