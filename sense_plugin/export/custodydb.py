"""The chain of custody in the single server's SQLite job store, on a thread of its own.

Audit records, holds and callback deliveries live in the same file as the exports
(``exports.sqlite3``), in tables export retention never touches. Appends to the audit
chain are serialised by ``BEGIN IMMEDIATE`` (one writer at a time, whichever connection).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple
from pathlib import Path
from typing import Any, TypeVar

from sense_plugin.errors import incident_error
from sense_plugin.export.audit import chained
from sense_plugin.export.custodystore import (
    AuditEntry,
    AuditQuery,
    AuditRecord,
    CustodyStore,
    Delivery,
    DeliveryStats,
    Hold,
    audit_where,
)

T = TypeVar("T")
log = logging.getLogger(__name__)
SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, time_us INTEGER NOT NULL, user TEXT NOT NULL,
    address TEXT NOT NULL, action TEXT NOT NULL, export_id INTEGER, detail TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_export ON audit(export_id, seq);
CREATE TABLE IF NOT EXISTS holds (
    export_id INTEGER PRIMARY KEY, user TEXT NOT NULL, since_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    n INTEGER PRIMARY KEY AUTOINCREMENT, delivery_id TEXT NOT NULL UNIQUE,
    export_id INTEGER NOT NULL, event TEXT NOT NULL, url TEXT NOT NULL, body BLOB NOT NULL,
    created_us INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_try_us INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL DEFAULT 'pending'
);
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries(state, export_id, n);
"""
#: In the order of the fields of ``AuditRecord`` and ``Delivery`` (rows are their ``astuple``).
AUDIT_COLUMNS = "seq, time_us, user, address, action, export_id, detail, hash"
DELIVERY_COLUMNS = "delivery_id, export_id, event, url, body, created_us, attempts, next_try_us"


class CustodyDb:
    """Synchronous SQLite access (confined to :class:`SqliteCustodyStore`'s thread)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def append_audit(self, item: AuditEntry) -> AuditRecord:
        cur = self._db.cursor()
        cur.execute("BEGIN IMMEDIATE")  # the last record cannot change under us
        try:
            row = cur.execute(f"SELECT {AUDIT_COLUMNS} FROM audit ORDER BY seq DESC LIMIT 1"
                              ).fetchone()
            record = chained(None if row is None else AuditRecord(*row), item)
            cur.execute(f"INSERT INTO audit ({AUDIT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
                        astuple(record))
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        return record

    def audit_page(self, query: AuditQuery) -> tuple[list[AuditRecord], int]:
        where, params = audit_where(query, "user", "?")
        total = int(self._db.execute(f"SELECT count(*) FROM audit {where}", params
                                     ).fetchone()[0])
        limit = -1 if query.limit is None else query.limit
        rows = self._db.execute(f"SELECT {AUDIT_COLUMNS} FROM audit {where} ORDER BY seq"
                                " LIMIT ? OFFSET ?", (*params, limit, query.offset))
        return [AuditRecord(*row) for row in rows], total

    def add_hold(self, hold: Hold) -> bool:
        cur = self._db.execute("INSERT OR IGNORE INTO holds VALUES (?,?,?)",
                               (hold.export_id, hold.user, hold.since_us))
        return cur.rowcount == 1

    def remove_hold(self, export_id: int) -> bool:
        return self._db.execute("DELETE FROM holds WHERE export_id=?",
                                (export_id,)).rowcount == 1

    def holds(self) -> dict[int, Hold]:
        rows = self._db.execute("SELECT export_id, user, since_us FROM holds")
        return {row[0]: Hold(*row) for row in rows}

    def add_deliveries(self, deliveries: list[Delivery]) -> None:
        self._db.execute("BEGIN")
        try:
            self._db.executemany(
                f"INSERT INTO deliveries ({DELIVERY_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
                [astuple(d) for d in deliveries])
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def due_deliveries(self, at_us: int, limit: int) -> list[Delivery]:
        # per export only its oldest pending delivery: the order per export is kept
        rows = self._db.execute(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE n IN (SELECT min(n) FROM"
            " deliveries WHERE state='pending' GROUP BY export_id) AND next_try_us<=?"
            " ORDER BY n LIMIT ?", (at_us, limit))
        return [Delivery(*row) for row in rows]

    def delivered(self, delivery_id: str) -> None:
        # the row stays (the counts of /metrics), its body goes
        self._db.execute("UPDATE deliveries SET state='delivered', attempts=attempts+1,"
                         " body=X'' WHERE delivery_id=?", (delivery_id,))

    def retry_later(self, delivery_id: str, next_try_us: int, give_up: bool) -> None:
        self._db.execute("UPDATE deliveries SET attempts=attempts+1, next_try_us=?, state=?"
                         " WHERE delivery_id=?",
                         (next_try_us, "abandoned" if give_up else "pending", delivery_id))

    def delivery_stats(self) -> DeliveryStats:
        counts = dict(self._db.execute("SELECT state, count(*) FROM deliveries GROUP BY state"
                                       ).fetchall())
        failures = self._db.execute(
            "SELECT coalesce(sum(attempts - (state='delivered')), 0) FROM deliveries"
        ).fetchone()[0]
        oldest = self._db.execute("SELECT min(created_us) FROM deliveries WHERE"
                                  " state='pending'").fetchone()[0]
        return DeliveryStats(int(counts.get("delivered", 0)), int(failures),
                             int(counts.get("pending", 0)), oldest)


class SqliteCustodyStore:
    """:class:`CustodyStore` on SQLite: every call on one dedicated thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sense-custody")
        self._db: CustodyDb | None = None

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        """Run on the store's thread; SQLite failures become a logged, coded error (-18)."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, func, *args)
        except sqlite3.Error as exc:
            raise incident_error(log, f"custody store {self.path}: {exc}",
                                 "the job store could not record the chain of custody "
                                 "(database locked, read-only or damaged)",
                                 traceback=False) from None

    def _call(self, name: str) -> Callable[..., Any]:
        assert self._db is not None, "the custody store is not open"
        method: Callable[..., Any] = getattr(self._db, name)
        return method

    async def open(self) -> None:
        self._db = await self._run(CustodyDb, self.path)

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._thread.shutdown(wait=True)

    async def append_audit(self, entry: AuditEntry) -> AuditRecord:
        record: AuditRecord = await self._run(self._call("append_audit"), entry)
        return record

    async def audit_page(self, query: AuditQuery) -> tuple[list[AuditRecord], int]:
        found: tuple[list[AuditRecord], int] = await self._run(self._call("audit_page"), query)
        return found

    async def add_hold(self, hold: Hold) -> bool:
        return bool(await self._run(self._call("add_hold"), hold))

    async def remove_hold(self, export_id: int) -> bool:
        return bool(await self._run(self._call("remove_hold"), export_id))

    async def holds(self) -> dict[int, Hold]:
        found: dict[int, Hold] = await self._run(self._call("holds"))
        return found

    async def add_deliveries(self, deliveries: list[Delivery]) -> None:
        await self._run(self._call("add_deliveries"), deliveries)

    async def due_deliveries(self, at_us: int, limit: int) -> list[Delivery]:
        found: list[Delivery] = await self._run(self._call("due_deliveries"), at_us, limit)
        return found

    async def delivered(self, delivery_id: str) -> None:
        await self._run(self._call("delivered"), delivery_id)

    async def retry_later(self, delivery_id: str, next_try_us: int, give_up: bool) -> None:
        await self._run(self._call("retry_later"), delivery_id, next_try_us, give_up)

    async def delivery_stats(self) -> DeliveryStats:
        found: DeliveryStats = await self._run(self._call("delivery_stats"))
        return found


_IS_A_CUSTODY_STORE: type[CustodyStore] = SqliteCustodyStore  # checked by mypy
