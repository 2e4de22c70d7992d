"""The chain of custody in the site's PostgreSQL: one audit chain for the whole site.

Audit records, holds and callback deliveries (migration 6 of ``cluster.schema``) share the
job store's connections. Appends to the audit chain take a transaction-level advisory lock,
so the servers of a site append one at a time and ``seq`` has no holes. Reference:
``docs/custody.rst``.
"""

from __future__ import annotations

from dataclasses import astuple

from sense_plugin.cluster.storeconn import StoreConnections
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

#: pg_advisory_xact_lock key of the audit chain: "audit" as a number.
AUDIT_LOCK = 0x6175646974
#: In the order of the fields of ``AuditRecord`` and ``Delivery`` (rows are their ``astuple``).
AUDIT_COLUMNS = "seq, time_us, username, address, action, export_id, detail, hash"
DELIVERY_COLUMNS = "delivery_id, export_id, event, url, body, created_us, attempts, next_try_us"


class PgCustodyStore:
    """:class:`CustodyStore` on the site's PostgreSQL (the job store opens and closes it)."""

    def __init__(self, db: StoreConnections) -> None:
        self._db = db

    async def open(self) -> None:
        """Nothing to do: the job store has connected and applied the migrations."""

    async def close(self) -> None:
        """Nothing to do: the job store closes the connections."""

    async def append_audit(self, entry: AuditEntry) -> AuditRecord:
        async with self._db.connection("append an audit record") as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (AUDIT_LOCK,))
            cur = await conn.execute(f"SELECT {AUDIT_COLUMNS} FROM sense_audit"
                                     " ORDER BY seq DESC LIMIT 1")
            row = await cur.fetchone()
            record = chained(None if row is None else AuditRecord(*row), entry)
            await conn.execute(
                f"INSERT INTO sense_audit ({AUDIT_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
                astuple(record))
        return record

    async def audit_page(self, query: AuditQuery) -> tuple[list[AuditRecord], int]:
        where, params = audit_where(query, "username", "%s")
        async with self._db.connection("read the audit trail") as conn:
            cur = await conn.execute(f"SELECT count(*) FROM sense_audit {where}", params)
            total = int((await cur.fetchone() or (0,))[0])
            cur = await conn.execute(
                f"SELECT {AUDIT_COLUMNS} FROM sense_audit {where} ORDER BY seq"
                " LIMIT %s OFFSET %s", (*params, query.limit, query.offset))
            rows = await cur.fetchall()
        return [AuditRecord(*row) for row in rows], total

    async def add_hold(self, hold: Hold) -> bool:
        async with self._db.connection("hold an export") as conn:
            cur = await conn.execute(
                "INSERT INTO sense_export_holds VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (hold.export_id, hold.user, hold.since_us))
            return cur.rowcount == 1

    async def remove_hold(self, export_id: int) -> bool:
        async with self._db.connection("release an export") as conn:
            cur = await conn.execute("DELETE FROM sense_export_holds WHERE export_id = %s",
                                     (export_id,))
            return cur.rowcount == 1

    async def holds(self) -> dict[int, Hold]:
        async with self._db.connection("read the holds") as conn:
            cur = await conn.execute("SELECT export_id, username, since_us"
                                     " FROM sense_export_holds")
            return {row[0]: Hold(*row) for row in await cur.fetchall()}

    async def add_deliveries(self, deliveries: list[Delivery]) -> None:
        rows = [astuple(d) for d in deliveries]
        async with self._db.connection("store callbacks") as conn, conn.transaction(), \
                conn.cursor() as cur:
            await cur.executemany(f"INSERT INTO sense_deliveries ({DELIVERY_COLUMNS})"
                                  " VALUES (%s,%s,%s,%s,%s,%s,%s,%s)", rows)

    async def due_deliveries(self, at_us: int, limit: int) -> list[Delivery]:
        # only the oldest pending delivery of each export: each export's order is kept (every
        # server of a site sends: a delivery may arrive twice, never out of order)
        async with self._db.connection("read callbacks") as conn:
            cur = await conn.execute(
                f"SELECT {DELIVERY_COLUMNS} FROM sense_deliveries WHERE n IN (SELECT min(n)"
                " FROM sense_deliveries WHERE state = 'pending' GROUP BY export_id)"
                " AND next_try_us <= %s ORDER BY n LIMIT %s", (at_us, limit))
            return [Delivery(row[0], row[1], row[2], row[3], bytes(row[4]), *row[5:])
                    for row in await cur.fetchall()]

    async def delivered(self, delivery_id: str) -> None:
        async with self._db.connection("mark a callback delivered") as conn:
            await conn.execute("UPDATE sense_deliveries SET state = 'delivered',"
                               " attempts = attempts + 1, body = ''::bytea"
                               " WHERE delivery_id = %s",
                               (delivery_id,))

    async def retry_later(self, delivery_id: str, next_try_us: int, give_up: bool) -> None:
        async with self._db.connection("reschedule a callback") as conn:
            await conn.execute(
                "UPDATE sense_deliveries SET attempts = attempts + 1, next_try_us = %s,"
                " state = %s WHERE delivery_id = %s",
                (next_try_us, "abandoned" if give_up else "pending", delivery_id))

    async def delivery_stats(self) -> DeliveryStats:
        async with self._db.connection("count callbacks") as conn:
            cur = await conn.execute(
                "SELECT count(*) FILTER (WHERE state = 'delivered'),"
                " coalesce(sum(attempts - (state = 'delivered')::int), 0),"
                " count(*) FILTER (WHERE state = 'pending'),"
                " min(created_us) FILTER (WHERE state = 'pending') FROM sense_deliveries")
            row = await cur.fetchone()
        assert row is not None
        return DeliveryStats(int(row[0]), int(row[1]), int(row[2]), row[3])


_IS_A_CUSTODY_STORE: type[CustodyStore] = PgCustodyStore  # checked by mypy
