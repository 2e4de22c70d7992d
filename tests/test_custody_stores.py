"""The audit trail's filters in both custody stores: the single server's SQLite and the
site's PostgreSQL build their ``WHERE`` clause with one helper (``custodystore.audit_where``),
each with its own user column and placeholder; both must find the same records."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sense_plugin.export.custodydb import SqliteCustodyStore
from sense_plugin.export.custodystore import AuditEntry, AuditQuery, CustodyStore, audit_where
from sense_plugin.testing.postgres import PgServer
from tests.pgserver import pg_server  # noqa: F401  (the fixture)

T0 = 1_795_168_800_000_000
ENTRIES = [AuditEntry(T0 + n * 1_000_000, user, "127.0.0.1", "export", export_id, f"n={n}")
           for n, (user, export_id) in enumerate([("alice", 1), ("bob", 1), ("alice", 2),
                                                  ("carol", None), ("bob", 2)])]
#: query → the ``detail`` of the records it lists, oldest first
CASES = [
    (AuditQuery(), ["n=0", "n=1", "n=2", "n=3", "n=4"]),
    (AuditQuery(user="bob"), ["n=1", "n=4"]),
    (AuditQuery(export_id=2), ["n=2", "n=4"]),
    (AuditQuery(export_id=1, user="alice"), ["n=0"]),
    (AuditQuery(start_us=T0 + 1_000_000, end_us=T0 + 3_000_000), ["n=1", "n=2", "n=3"]),
    (AuditQuery(user="alice", start_us=T0 + 1), ["n=2"]),
    (AuditQuery(offset=1, limit=2), ["n=1", "n=2"]),
    (AuditQuery(user="nobody"), []),
]


def test_the_where_clause_names_the_store_s_column_and_placeholder() -> None:
    query = AuditQuery(export_id=7, user="bob", end_us=5)
    assert audit_where(query, "username", "%s") == (
        "WHERE export_id = %s AND username = %s AND time_us <= %s", (7, "bob", 5))
    assert audit_where(AuditQuery(start_us=3), "user", "?") == ("WHERE time_us >= ?", (3,))
    assert audit_where(AuditQuery(limit=3, offset=1), "user", "?") == ("", ())


async def _check(store: CustodyStore) -> None:
    for entry in ENTRIES:
        await store.append_audit(entry)
    for query, details in CASES:
        records, total = await store.audit_page(query)
        assert [r.detail for r in records] == details, query
        assert total == (len(ENTRIES) if query == AuditQuery(offset=1, limit=2)
                         else len(details)), query


async def test_sqlite_store_filters_the_audit_trail(tmp_path: Path) -> None:
    store = SqliteCustodyStore(tmp_path / "exports.sqlite3")
    await store.open()
    try:
        await _check(store)
    finally:
        await store.close()


@pytest.fixture
async def pg_custody(pg_server: PgServer) -> AsyncIterator[CustodyStore]:  # noqa: F811
    pytest.importorskip("psycopg", reason="needs psycopg (the cluster extra)")
    pytest.importorskip("procrastinate", reason="needs procrastinate (the cluster extra)")
    from sense_plugin.cluster.custodypg import PgCustodyStore
    from sense_plugin.cluster.store import PgJobStore

    jobs = PgJobStore(pg_server.url)
    await jobs.open()  # connects and applies the migrations, the custody tables' too
    try:
        yield PgCustodyStore(jobs._db)
    finally:
        await jobs.close()


async def test_postgres_store_filters_the_audit_trail(pg_custody: CustodyStore) -> None:
    await _check(pg_custody)
