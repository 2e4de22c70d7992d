"""Node heartbeats and the site's server and device lists, read from PostgreSQL.

Every ``heartbeat_s`` each server upserts its row in ``sense_nodes`` (name, node_url, its
own ``heartbeat_s``) and replaces its rows in ``sense_node_devices``. The database's clock
stamps ``last_seen``, so the servers' clocks do not matter. A server is online while its
last heartbeat is at most three of its own heartbeat intervals (and ``node_timeout_s``) old
and it has not stopped; a graceful stop marks it offline at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from sense_plugin.cluster.db import redacted
from sense_plugin.config import Config
from sense_plugin.errors import NotAvailableError

log = logging.getLogger(__name__)
#: Missed heartbeats after which a server is offline.
MISSED_BEATS = 3
#: A site list that cannot be read within this time is an error (-1006), never a hang.
QUERY_TIMEOUT_S = 3.0

UPSERT_NODE = """
INSERT INTO sense_nodes (serverid, name, node_url, heartbeat_s, started_at, last_seen)
VALUES (%(serverid)s, %(name)s, %(url)s, %(beat)s, now(), now())
ON CONFLICT (serverid) DO UPDATE SET name = excluded.name, node_url = excluded.node_url,
    heartbeat_s = excluded.heartbeat_s, last_seen = now(), stopped_at = NULL,
    started_at = CASE WHEN %(first)s THEN now() ELSE sense_nodes.started_at END
"""
ONLINE = """(n.stopped_at IS NULL
    AND now() - n.last_seen <= make_interval(secs => least(%(missed)s * n.heartbeat_s,
                                                            %(timeout)s)))"""
SELECT_SERVERS = f"SELECT n.serverid, n.name, n.node_url, {ONLINE}, " \
                 "extract(epoch FROM now() - n.last_seen) FROM sense_nodes n ORDER BY n.serverid"
SELECT_DEVICES = f"""SELECT d.serverid, d.deviceid, d.name, d.status, {ONLINE}
FROM sense_node_devices d JOIN sense_nodes n USING (serverid) ORDER BY d.serverid, d.deviceid"""


@dataclass(frozen=True)
class SiteServer:
    server_id: int
    name: str
    node_url: str
    online: bool
    #: Seconds since its last heartbeat (by the database's clock).
    seen_ago_s: float = 0.0


@dataclass(frozen=True)
class SiteDevice:
    server_id: int
    device_id: int
    name: str
    status: str
    online: bool


class Site:
    """This server's view of the site: its heartbeat, and every server and device."""

    def __init__(self, config: Config, pool: AsyncConnectionPool,
                 device_status: Callable[[int], str]) -> None:
        assert config.cluster is not None
        self.config, self.cluster, self.pool = config, config.cluster, pool
        self.server_id = config.server.server_id
        self._device_status = device_status
        self._beats = 0

    async def beat(self) -> None:
        """Upsert this server's row and its devices (one transaction)."""
        devices = [(self.server_id, d.device_id, d.name, self._device_status(d.device_id))
                   for d in self.config.devices]
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(UPSERT_NODE, {
                "serverid": self.server_id, "name": self.config.server.name,
                "url": self.cluster.node_url, "beat": self.cluster.heartbeat_s,
                "first": self._beats == 0})
            await conn.execute("DELETE FROM sense_node_devices WHERE serverid = %s",
                               (self.server_id,))
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO sense_node_devices (serverid, deviceid, name, status) "
                    "VALUES (%s, %s, %s, %s)", devices)
        self._beats += 1

    async def run(self) -> None:
        """Beat every ``heartbeat_s`` until cancelled; a lost database is logged, not fatal."""
        failing = False
        while True:
            try:
                async with asyncio.timeout(max(self.cluster.heartbeat_s, QUERY_TIMEOUT_S)):
                    await self.beat()
                if failing:
                    log.info("heartbeat: the site database is back")
                failing = False
            except (psycopg.Error, TimeoutError, OSError) as exc:
                if not failing:
                    log.warning("heartbeat failed (retrying every %g s): %s",
                                self.cluster.heartbeat_s, exc)
                failing = True
            await asyncio.sleep(self.cluster.heartbeat_s)

    async def stopped(self) -> None:
        """Mark this server offline at once (a graceful stop)."""
        async with self.pool.connection() as conn:
            await conn.execute("UPDATE sense_nodes SET stopped_at = now() WHERE serverid = %s",
                               (self.server_id,))

    async def servers(self) -> list[SiteServer]:
        rows = await self._query(SELECT_SERVERS)
        return [SiteServer(int(r[0]), r[1], r[2], bool(r[3]), float(r[4])) for r in rows]

    async def devices(self) -> list[SiteDevice]:
        """Every device of the site; this server's with their live status."""
        rows = await self._query(SELECT_DEVICES)
        result = []
        for server_id, device_id, name, status, online in rows:
            server_id, device_id = int(server_id), int(device_id)
            if server_id == self.server_id:
                status, online = self._device_status(device_id), True
            result.append(SiteDevice(server_id, device_id, name,
                                     status if online else "offline", bool(online)))
        return result

    async def _query(self, query: str) -> list[tuple[Any, ...]]:
        params = {"missed": MISSED_BEATS, "timeout": self.cluster.node_timeout_s}
        try:
            async with asyncio.timeout(QUERY_TIMEOUT_S), self.pool.connection() as conn:
                cur = await conn.execute(query.encode(), params)
                return await cur.fetchall()
        except (psycopg.Error, TimeoutError, OSError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else (
                f"no answer within {QUERY_TIMEOUT_S:g} s" if isinstance(exc, TimeoutError)
                else type(exc).__name__)
            raise NotAvailableError(f"the site database (PostgreSQL "
                                    f"{redacted(self.cluster.database_url)}) is not reachable: "
                                    f"{reason}") from None
