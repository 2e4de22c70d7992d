"""The export job store in the site's PostgreSQL: :class:`PgJobStore`, a ``JobStore``.

Every server of a site keeps its exports and device jobs in ``sense_exports`` and
``sense_jobs`` (migration 3 of ``cluster.schema``), so any server reads the same status.
Export ids come from one sequence, ``sense_export_id_seq``: unique across the site, never
reused (a sequence never goes back, also not after a crash), and above ``id_floor`` (the
highest numbered export directory this server holds) from ``open()`` on, whichever server
gives them out: the server that runs a job writes into ``<export root>/<id>``.

The stored combined status of an export is computed from all its stored jobs, under a row
lock on the export, whenever one of its jobs or its finish time is saved: two servers
running the two jobs of one export each hold a copy that is stale about the other's job,
and the stored status is still right.

Every call takes its connection from :class:`~sense_plugin.cluster.storeconn.StoreConnections`:
bounded by ``timeout_s``, a database failure a coded error (-1006 when the database is not
available, else -18) logged with an incident id. The rows and their SQL text are in
``cluster.storerows``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection, sql

from sense_plugin.cluster.schema import upgrade
from sense_plugin.cluster.storeconn import STORE_TIMEOUT_S, StoreConnections
from sense_plugin.cluster.storerows import (
    COUNT,
    INSERT_EXPORT,
    INSERT_JOB,
    JOB_STATUSES,
    LOCK_EXPORT,
    SELECT,
    SET_STATUS,
    UPDATE_EXPORT,
    UPDATE_JOB,
    combined_status,
    export_params,
    exports_from_rows,
    job_params,
)
from sense_plugin.export.model import Export, Job, Status
from sense_plugin.export.storage import ExportQuery, JobStore

log = logging.getLogger(__name__)
#: ``ALTER SEQUENCE`` takes a lock that makes concurrent ``nextval`` wait: raising the
#: sequence to a floor can never hand out an id twice.
RAISE_FLOOR = """
SELECT setval('sense_export_id_seq', greatest(%s,
    (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM sense_export_id_seq)))"""
CLAIM_LOCK = "SELECT finished_us, finisher FROM sense_exports WHERE export_id = %s FOR UPDATE"


class PgJobStore:
    """Exports and their device jobs in PostgreSQL (``[cluster] database_url``)."""

    def __init__(self, url: str, *, id_floor: int = 0, pool_size: int = 4,
                 timeout_s: float = STORE_TIMEOUT_S, finisher_id: int = 0) -> None:
        self._db = StoreConnections(url, log, pool_size=pool_size, timeout_s=timeout_s)
        self.description = self._db.description
        #: new_id() always answers above this (raise it when more directories appear).
        self.id_floor = id_floor
        #: The serverid this store finishes exports as (``claim_finish``).
        self.finisher_id = finisher_id

    async def open(self) -> None:
        """Connect, apply the missing migrations; refuse a schema newer than this code
        (``SchemaTooNewError``) or a database we cannot use (``DatabaseUnavailableError``)."""
        await self._db.open(self._prepare)

    async def _prepare(self, conn: AsyncConnection[Any]) -> None:
        """On the first connection: the migrations (unbounded), then the id floor."""
        await conn.execute("SET statement_timeout = 0")  # a migration may take long
        try:
            await upgrade(conn)
        finally:
            await conn.execute("RESET statement_timeout")
        if self.id_floor > 0:  # at once: another server may give out the next id
            await _raise_floor(conn, self.id_floor)

    async def close(self) -> None:
        await self._db.close()

    def _connection(self, action: str) -> AbstractAsyncContextManager[AsyncConnection[Any]]:
        """A pooled connection for one call, bounded by ``timeout_s``; failures coded."""
        return self._db.connection(action)

    async def new_id(self) -> int:
        async with self._connection("give out an export id") as conn:
            export_id = await _nextval(conn)
            if export_id <= self.id_floor:
                await _raise_floor(conn, self.id_floor)
                export_id = await _nextval(conn)
        return export_id

    async def insert(self, export: Export) -> None:
        if export.export_id <= 0:
            raise ValueError("insert needs an export id from new_id()")
        async with self._connection("save the export") as conn, conn.transaction():
            await conn.execute(INSERT_EXPORT, export_params(export))
            async with conn.cursor() as cur:
                await cur.executemany(INSERT_JOB, [job_params(export, j) for j in export.jobs])
            await self.inserted(conn, export)

    async def inserted(self, conn: AsyncConnection[Any], export: Export) -> None:
        """Called inside the insert's transaction (a site queues the export's jobs here)."""

    async def save_job(self, export: Export, job: Job) -> None:
        """The job's state; the export's combined status from all its stored jobs (another
        server may have changed its own jobs since ``export`` was read)."""
        async with self._connection("update a job") as conn, conn.transaction():
            locked = await (await conn.execute(LOCK_EXPORT, (export.export_id,))).fetchone()
            if locked is None:
                return  # purged meanwhile
            await conn.execute(UPDATE_JOB, job_params(export, job))
            await self._restatus(conn, export.export_id, locked[0])

    async def claim_finish(self, export: Export) -> bool:
        """Under the export's row lock: every stored job terminal and no finisher yet → this
        server (``finisher_id``) is the finisher. The jobs of other servers are refreshed
        into ``export`` (its manifest lists them)."""
        async with self._connection("finish an export") as conn, conn.transaction():
            cur = await conn.execute(CLAIM_LOCK, (export.export_id,))
            locked = await cur.fetchone()
            if locked is None or locked[0] is not None or \
                    locked[1] not in (None, self.finisher_id):
                return False  # purged, finished, or being finished by another server
            stored = await self._select_in(conn, export.export_id)
            if stored is None or not all(j.terminal for j in stored.jobs):
                return False
            mine = {j.index: j for j in export.jobs if j.server_id == self.finisher_id}
            export.jobs = [mine.get(j.index, j) for j in stored.jobs]
            await conn.execute("UPDATE sense_exports SET finisher = %s WHERE export_id = %s",
                               (self.finisher_id, export.export_id))
        return True

    async def save_export(self, export: Export) -> None:
        """Finish time, deadline; the combined status from all its stored jobs."""
        async with self._connection("update an export") as conn, conn.transaction():
            locked = await (await conn.execute(LOCK_EXPORT, (export.export_id,))).fetchone()
            if locked is None:
                return
            await conn.execute(UPDATE_EXPORT, {
                "finished_us": export.finished_us, "expires_us": export.expires_us,
                "export_id": export.export_id})
            await self._restatus(conn, export.export_id, export.finished_us)

    @staticmethod
    async def _restatus(conn: AsyncConnection[Any], export_id: int, finished_us: int | None
                        ) -> None:
        rows = await (await conn.execute(JOB_STATUSES, (export_id,))).fetchall()
        status = combined_status([Status(r[0]) for r in rows], finished_us)
        await conn.execute(SET_STATUS, (status.value, export_id))

    async def delete(self, export_ids: Sequence[int]) -> None:
        if not export_ids:
            return
        async with self._connection("purge exports") as conn:
            await conn.execute("DELETE FROM sense_exports WHERE export_id = ANY(%s)",
                               (list(export_ids),))

    async def get(self, export_id: int) -> Export | None:
        exports = await self._select("read an export", "export_id = %(id)s", {"id": export_id})
        return exports[0] if exports else None

    async def unfinished(self) -> list[Export]:
        return await self._select("read the unfinished exports", "finished_us IS NULL", {})

    async def page(self, query: ExportQuery) -> tuple[list[Export], int]:
        conditions: list[str] = []
        params: dict[str, Any] = {}
        if query.owner is not None:
            conditions.append("owner = %(owner)s")
            params["owner"] = query.owner
        if query.statuses is not None:
            conditions.append("status = ANY(%(statuses)s)")
            params["statuses"] = sorted(s.value for s in query.statuses)
        if query.retried_from is not None:
            conditions.append("retried_from = %(retried_from)s")
            params["retried_from"] = query.retried_from
        where = " AND ".join(conditions)
        select = _compose(SELECT, where, direction="DESC" if query.newest_first else "ASC")
        async with self._connection("list exports") as conn, conn.pipeline():
            rows = await conn.execute(
                select, {**params, "offset": query.offset, "limit": query.limit})
            count = await conn.execute(_compose(COUNT, where), params)
            page, total = await rows.fetchall(), await count.fetchone()
        return exports_from_rows(page), int(total[0]) if total else 0

    async def expiring(self, at_us: int) -> list[Export]:
        return await self._select(
            "read the expiring exports",
            "status IN ('COMPLETED', 'FAILED') AND expires_us <= %(at)s", {"at": at_us})

    async def finished_before(self, at_us: int) -> list[Export]:
        return await self._select("read the finished exports", "finished_us <= %(at)s",
                                  {"at": at_us})

    async def count_by_status(self) -> tuple[dict[Status, int], dict[Status, int]]:
        """Exports by combined status and jobs by status, with 0 for those none has."""
        async with self._connection("count exports by status") as conn, conn.pipeline():
            exports = await conn.execute("SELECT status, count(*) FROM sense_exports GROUP BY 1")
            jobs = await conn.execute("SELECT status, count(*) FROM sense_jobs GROUP BY 1")
            export_rows, job_rows = await exports.fetchall(), await jobs.fetchall()
        by_export, by_job = dict.fromkeys(Status, 0), dict.fromkeys(Status, 0)
        by_export.update({Status(status): int(n) for status, n in export_rows})
        by_job.update({Status(status): int(n) for status, n in job_rows})
        return by_export, by_job

    async def directories(self) -> dict[str, int]:
        async with self._connection("read export directories") as conn:
            cur = await conn.execute("SELECT out_base, export_id FROM sense_exports")
            rows = await cur.fetchall()
        return {str(Path(base) / str(export_id)): int(export_id) for base, export_id in rows}

    async def _select_in(self, conn: AsyncConnection[Any], export_id: int) -> Export | None:
        cur = await conn.execute(_compose(SELECT, "export_id = %(id)s", direction="ASC"),
                                 {"id": export_id, "offset": 0, "limit": None})
        found = exports_from_rows(await cur.fetchall())
        return found[0] if found else None

    async def _select(self, action: str, where: str, params: dict[str, Any], *,
                      newest_first: bool = False, offset: int = 0, limit: int | None = None
                      ) -> list[Export]:
        query = _compose(SELECT, where, direction="DESC" if newest_first else "ASC")
        async with self._connection(action) as conn:
            cur = await conn.execute(query, {**params, "offset": offset, "limit": limit})
            rows = await cur.fetchall()
        return exports_from_rows(rows)


def _compose(template: str, where: str, **parts: str) -> sql.Composed:
    """``template`` with its ``{where}`` (and ``direction``) filled in: constant SQL only."""
    clause = f"WHERE {where}" if where else ""
    return sql.SQL(template).format(
        where=sql.SQL(clause), **{k: sql.SQL(v) for k, v in parts.items()})


async def _raise_floor(conn: AsyncConnection[Any], floor: int) -> None:
    """Every id given out from now on is above ``floor`` (the sequence never goes back)."""
    async with conn.transaction():
        await conn.execute("ALTER SEQUENCE sense_export_id_seq NO CYCLE")  # the lock
        await conn.execute(RAISE_FLOOR, (floor,))


async def _nextval(conn: AsyncConnection[Any]) -> int:
    cur = await conn.execute("SELECT nextval('sense_export_id_seq')")
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


_IS_A_JOB_STORE: type[JobStore] = PgJobStore  # checked by mypy
