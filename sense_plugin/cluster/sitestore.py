"""The site's job store: :class:`PgJobStore` plus the queue and what servers ask each other.

An export's device jobs are put on the queue of the server holding each device
(``server-<serverid>``, procrastinate) in the very transaction that stores the export, so
an accepted export always has its jobs queued and a refused one has none. A server running a
job writes its progress figures every second (:meth:`save_progress`: figures only, never
the status another server may have changed), and reads what others asked of its running
jobs: REMOVED (``action=remove`` on any server) or a stop (``action=stop``).

Each server that writes into an export's directory (the one that took it, those running its
jobs, the one that finished it) records a holding (``sense_holdings``). An export removed or
expired on any server is one each holder lets go of: it deletes its own files of it
(:meth:`released`, then :meth:`let_go`). Keepalive counts the requests of every server
(:meth:`seen`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import procrastinate
from psycopg import AsyncConnection

from sense_plugin.cluster.custodypg import PgCustodyStore
from sense_plugin.cluster.queue import DEVICE_TASK, queue_name
from sense_plugin.cluster.store import PgJobStore
from sense_plugin.cluster.storerows import LOCK_EXPORT
from sense_plugin.export.custodystore import CustodyStore
from sense_plugin.export.model import Export, Job, Status
from sense_plugin.timestamps import now_us

SAVE_PROGRESS = """
UPDATE sense_jobs SET progress = %s, bytes_written = %s, bandwidth_kbps = %s
WHERE export_id = %s AND idx = %s AND status = 'SYNCING'"""
ASKED = """
SELECT export_id, idx, status, stop_asked FROM sense_jobs
WHERE server_id = %s AND (export_id, idx) IN (SELECT * FROM unnest(%s::bigint[], %s::int[]))"""


#: Jobs of servers not seen for ``node_timeout_s`` fail (docs/site.rst); their exports' ids.
FAIL_ABSENT = """
UPDATE sense_jobs j SET status = 'FAILED', errorcode = -1008, finished_us = %(now_us)s,
    description = 'server ' || j.server_id || ' has been offline for more than '
        || %(timeout)s || ' s (node_timeout_s); this device job did not run'
FROM sense_nodes n
WHERE j.server_id = n.serverid AND j.status IN ('PENDING', 'SYNCING')
  AND now() - n.last_seen > make_interval(secs => %(timeout_s)s)
RETURNING j.export_id"""
HOLD = """
INSERT INTO sense_holdings (serverid, export_id) VALUES (%s, %s) ON CONFLICT DO NOTHING"""
#: This server's holdings of exports no longer in the store (purged while it was away).
VANISHED = """
SELECT h.export_id FROM sense_holdings h WHERE h.serverid = %s
  AND NOT EXISTS (SELECT 1 FROM sense_exports e WHERE e.export_id = h.export_id)"""
SHARE_SEEN = """
UPDATE sense_exports e SET seen_us = GREATEST(coalesce(e.seen_us, 0), t.seen_us)
FROM unnest(%s::bigint[], %s::bigint[]) AS t(export_id, seen_us)
WHERE e.export_id = t.export_id"""
READ_SEEN = """
SELECT export_id, seen_us FROM sense_exports
WHERE export_id = ANY(%s::bigint[]) AND seen_us IS NOT NULL"""


class SiteJobStore(PgJobStore):
    """The job store of a site: every export's jobs queued where their devices are."""

    def __init__(self, url: str, queue: procrastinate.App, server_id: int, *,
                 id_floor: int = 0) -> None:
        super().__init__(url, id_floor=id_floor, finisher_id=server_id)
        self.queue = queue
        self.server_id = server_id

    async def inserted(self, conn: AsyncConnection[Any], export: Export) -> None:
        jobs = [self.queue.configure_task(DEVICE_TASK, queue=queue_name(job.server_id))
                .make_new_job(export_id=export.export_id, index=job.index)
                for job in export.jobs]
        await self.queue.job_manager.batch_defer_jobs_async(jobs, connection=conn)
        await conn.execute(HOLD, (self.server_id, export.export_id))  # its directory is here

    def custody_store(self) -> CustodyStore:
        """The site-wide audit chain, holds and callbacks (cluster/custodypg.py)."""
        return PgCustodyStore(self._db)

    async def hold(self, export_id: int) -> None:
        """This server is about to write into the export's directory (job files, manifest)."""
        async with self._connection("record a holding") as conn:
            await conn.execute(HOLD, (self.server_id, export_id))

    async def released(self) -> tuple[list[Export], list[int]]:
        """This server's holdings to let go of: (the exports now REMOVED or EXPIRED, the ids
        of those no longer stored at all)."""
        exports = await self._select(
            "read the removed and expired exports held here",
            "status IN ('REMOVED', 'EXPIRED') AND export_id IN (SELECT export_id FROM "
            "sense_holdings WHERE serverid = %(me)s)", {"me": self.server_id})
        async with self._connection("read the holdings of purged exports") as conn:
            rows = await (await conn.execute(VANISHED, (self.server_id,))).fetchall()
        return exports, [int(row[0]) for row in rows]

    async def seen(self, touched: Mapping[int, int], export_ids: Sequence[int]
                   ) -> dict[int, int]:
        """Keepalive across servers: write this server's newest requests per export
        (wall clock µs), read the site's newest for ``export_ids``."""
        async with self._connection("share keepalive requests") as conn, conn.transaction():
            if touched:
                await conn.execute(SHARE_SEEN, (list(touched), list(touched.values())))
            rows = await (await conn.execute(READ_SEEN, (list(export_ids),))).fetchall() \
                if export_ids else []
        return {int(e): int(s) for e, s in rows}

    async def let_go(self, export_ids: Sequence[int]) -> None:
        """This server's files of these exports are deleted: their holdings end."""
        if not export_ids:
            return
        async with self._connection("end holdings") as conn:
            await conn.execute("DELETE FROM sense_holdings WHERE serverid = %s "
                               "AND export_id = ANY(%s)", (self.server_id, list(export_ids)))

    async def save_progress(self, jobs: Sequence[Job]) -> None:
        """The figures of this server's running jobs (not their status)."""
        if not jobs:
            return
        async with self._connection("save progress") as conn, conn.cursor() as cur:
            await cur.executemany(SAVE_PROGRESS, [
                (j.progress, j.bytes_written, j.bandwidth_kbps, j.export_id, j.index)
                for j in jobs])

    async def asked(self, jobs: Sequence[Job]) -> dict[tuple[int, int], tuple[Status, bool]]:
        """(stored status, stop asked) of these jobs of this server."""
        if not jobs:
            return {}
        async with self._connection("read what was asked of running jobs") as conn:
            cur = await conn.execute(ASKED, (self.server_id, [j.export_id for j in jobs],
                                             [j.index for j in jobs]))
            rows = await cur.fetchall()
        return {(int(e), int(i)): (Status(s), bool(stop)) for e, i, s, stop in rows}

    async def ask_stop(self, export_id: int, index: int) -> None:
        """Ask the server running this job to end it now, keeping its file."""
        async with self._connection("ask a stop") as conn:
            await conn.execute("UPDATE sense_jobs SET stop_asked = true WHERE export_id = %s "
                               "AND idx = %s", (export_id, index))

    async def finisher(self, export_id: int) -> int | None:
        """The server that finished (and wrote the manifest of) an export."""
        async with self._connection("read an export's finisher") as conn:
            cur = await conn.execute("SELECT finisher FROM sense_exports WHERE export_id = %s",
                                     (export_id,))
            row = await cur.fetchone()
        return None if row is None or row[0] is None else int(row[0])

    async def fail_absent(self, timeout_s: float) -> list[int]:
        """FAILED (-1008) for the waiting and running jobs of servers away for longer than
        ``timeout_s``; the ids of the exports that changed (their status restored)."""
        async with self._connection("fail the jobs of absent servers") as conn, \
                conn.transaction():
            cur = await conn.execute(FAIL_ABSENT, {"now_us": now_us(), "timeout_s": timeout_s,
                                                   "timeout": f"{timeout_s:g}"})
            changed = sorted({int(row[0]) for row in await cur.fetchall()})
            for export_id in changed:
                locked = await (await conn.execute(LOCK_EXPORT, (export_id,))).fetchone()
                if locked is not None:
                    await self._restatus(conn, export_id, locked[0])
        return changed
