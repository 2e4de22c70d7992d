"""The site database's versioned schema: migrations applied in order, once, under a lock.

``schema_version`` holds one row per applied migration. ``upgrade`` is idempotent and safe
when several servers start at once (a transaction-level advisory lock serialises them); a
database whose version is above the newest this code knows is refused, never touched.
Migration 2 is procrastinate's own schema (``procrastinate.schema.SchemaManager``), so the
queue's tables live in the same database and are versioned with ours. Migration 3 is the
export job store (``cluster.store.PgJobStore``): exports, their device jobs, one id sequence.
Migration 4 adds what servers ask of each other's jobs, 5 which servers hold files of an
export and when any server last saw a request for it (keepalive), 6 the chain of custody.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import procrastinate
from procrastinate.schema import SchemaManager
from psycopg import AsyncConnection

from sense_plugin.cluster.errors import SchemaTooNewError

log = logging.getLogger(__name__)
#: pg_advisory_xact_lock key: "sense" as a number.
LOCK_KEY = 0x73656E7365

NODES_SQL = """
CREATE TABLE sense_nodes (
    serverid      numeric(20) PRIMARY KEY,
    name          text NOT NULL,
    node_url      text NOT NULL,
    heartbeat_s   double precision NOT NULL,
    started_at    timestamptz NOT NULL,
    last_seen     timestamptz NOT NULL,
    stopped_at    timestamptz
);
CREATE TABLE sense_node_devices (
    serverid  numeric(20) NOT NULL REFERENCES sense_nodes ON DELETE CASCADE,
    deviceid  numeric(20) NOT NULL,
    name      text NOT NULL,
    status    text NOT NULL,
    PRIMARY KEY (serverid, deviceid)
);
CREATE TABLE sense_probes (
    job_id       bigint PRIMARY KEY,
    serverid     numeric(20) NOT NULL,
    deferred_at  timestamptz NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    attempts     integer NOT NULL DEFAULT 1
);
"""
#: The job store: columns as SQLite's (``export/store.py``) plus the stored combined status.
STORE_SQL = """
CREATE SEQUENCE sense_export_id_seq AS bigint MINVALUE 1;
CREATE TABLE sense_exports (
    export_id             bigint PRIMARY KEY,
    owner                 text NOT NULL,
    created_us            bigint NOT NULL,
    path                  text NOT NULL,
    out_base              text NOT NULL,
    format                text NOT NULL,
    name                  text NOT NULL,
    bandwidth_limit_kbps  bigint NOT NULL,
    retried_from          bigint,
    finished_us           bigint,
    expires_us            bigint,
    options               jsonb NOT NULL DEFAULT '{}',
    status                text NOT NULL CHECK (status IN
        ('PENDING', 'SYNCING', 'COMPLETED', 'REMOVED', 'FAILED', 'EXPIRED'))
);
CREATE INDEX sense_exports_owner ON sense_exports (owner, export_id);
CREATE INDEX sense_exports_status ON sense_exports (status, export_id);
CREATE INDEX sense_exports_unfinished ON sense_exports (export_id) WHERE finished_us IS NULL;
CREATE INDEX sense_exports_finished ON sense_exports (finished_us)
    WHERE finished_us IS NOT NULL;
CREATE INDEX sense_exports_expires ON sense_exports (expires_us)
    WHERE expires_us IS NOT NULL AND status IN ('COMPLETED', 'FAILED');
CREATE TABLE sense_jobs (
    export_id       bigint NOT NULL REFERENCES sense_exports ON DELETE CASCADE,
    idx             integer NOT NULL,
    server_id       numeric(20) NOT NULL,
    device_id       numeric(20) NOT NULL,
    device_name     text NOT NULL,
    start_us        bigint NOT NULL,
    end_us          bigint NOT NULL,
    status          text NOT NULL,
    progress        integer NOT NULL,
    bytes_written   bigint NOT NULL,
    bandwidth_kbps  bigint NOT NULL,
    errorcode       integer NOT NULL,
    description     text NOT NULL,
    started_us      bigint,
    finished_us     bigint,
    file            jsonb,
    stopped         boolean NOT NULL DEFAULT false,
    PRIMARY KEY (export_id, idx)
);
CREATE INDEX sense_jobs_server ON sense_jobs (server_id, status);
"""


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sql: Callable[[], str]


SITE_JOBS_SQL = """
ALTER TABLE sense_exports ADD COLUMN finisher numeric(20);
ALTER TABLE sense_jobs ADD COLUMN stop_asked boolean NOT NULL DEFAULT false;
"""

#: Which servers hold files (or a manifest) of which export: each deletes its own when the
#: export is removed or expires on any server. No foreign key: a holding outlives a purge.
#: ``seen_us``: the newest status request or download of an export on any server (keepalive).
HOLDINGS_SQL = """
CREATE TABLE sense_holdings (
    export_id  bigint NOT NULL,
    serverid   numeric(20) NOT NULL,
    PRIMARY KEY (serverid, export_id)
);
ALTER TABLE sense_exports ADD COLUMN seen_us bigint;
"""

#: The chain of custody (cluster/custodypg.py): the site-wide audit chain, evidence holds and
#: completion callbacks waiting to be delivered. None of it is touched by export retention.
CUSTODY_SQL = """
CREATE TABLE sense_audit (
    seq        bigint PRIMARY KEY,
    time_us    bigint NOT NULL,
    username   text NOT NULL,
    address    text NOT NULL,
    action     text NOT NULL,
    export_id  bigint,
    detail     text NOT NULL,
    hash       text NOT NULL
);
CREATE INDEX sense_audit_export ON sense_audit (export_id, seq);
CREATE TABLE sense_export_holds (
    export_id  bigint PRIMARY KEY,
    username   text NOT NULL,
    since_us   bigint NOT NULL
);
CREATE TABLE sense_deliveries (
    n            bigserial PRIMARY KEY,
    delivery_id  text NOT NULL UNIQUE,
    export_id    bigint NOT NULL,
    event        text NOT NULL,
    url          text NOT NULL,
    body         bytea NOT NULL,
    created_us   bigint NOT NULL,
    attempts     integer NOT NULL DEFAULT 0,
    next_try_us  bigint NOT NULL DEFAULT 0,
    state        text NOT NULL DEFAULT 'pending'
);
CREATE INDEX sense_deliveries_pending ON sense_deliveries (export_id, n)
    WHERE state = 'pending';
"""

MIGRATIONS = (
    Migration(1, "nodes, their devices, queue probes", lambda: NODES_SQL),
    Migration(2, f"procrastinate {procrastinate.__version__} schema", SchemaManager.get_schema),
    Migration(3, "export job store: sense_exports, sense_jobs, sense_export_id_seq",
              lambda: STORE_SQL),
    Migration(4, "site jobs: the server that finished an export, stops asked of a job",
              lambda: SITE_JOBS_SQL),
    Migration(5, "holdings: the servers with files of an export; keepalive across servers",
              lambda: HOLDINGS_SQL),
    Migration(6, "chain of custody: audit trail, evidence holds, callback deliveries",
              lambda: CUSTODY_SQL),
)
LATEST = MIGRATIONS[-1].version

CREATE_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version      integer PRIMARY KEY,
    description  text NOT NULL,
    applied_at   timestamptz NOT NULL DEFAULT now()
)"""


async def current_version(conn: AsyncConnection) -> int:
    """The highest applied migration, 0 for an empty database."""
    cur = await conn.execute("SELECT to_regclass('schema_version') IS NOT NULL")
    row = await cur.fetchone()
    if not row or not row[0]:
        return 0
    cur = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_version")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def upgrade(conn: AsyncConnection) -> list[int]:
    """Apply the missing migrations (each in its own transaction); the versions applied.

    A session-level advisory lock is held across all of them, so of several servers starting
    at once one applies every missing migration and the others find them applied.
    """
    await conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    try:
        return await _apply_missing(conn)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


async def _apply_missing(conn: AsyncConnection) -> list[int]:
    applied: list[int] = []
    for migration in MIGRATIONS:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            await conn.execute(CREATE_VERSION_TABLE)
            version = await current_version(conn)
            if version > LATEST:
                raise SchemaTooNewError(
                    f"[cluster] database_url: the database schema is version {version}, newer "
                    f"than this sense_plugin knows ({LATEST}): upgrade sense_plugin here")
            if version >= migration.version:
                continue
            await conn.execute(migration.sql().encode())  # a script: no parameters
            await conn.execute(
                "INSERT INTO schema_version (version, description) VALUES (%s, %s)",
                (migration.version, migration.description))
            log.info("database schema: applied %d (%s)", migration.version, migration.description)
            applied.append(migration.version)
    return applied
