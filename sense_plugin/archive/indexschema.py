"""The archive index's table layout, the hash its paths are found by, and the migration of
an index written by an earlier version (the queries are in ``index``)."""

from __future__ import annotations

import hashlib
import logging
import sqlite3

log = logging.getLogger("sense_plugin.archive.index")

SCHEMA_VERSION = 3

#: Rows are kept in (device, state, start) order, so the segments of a time range are read as
#: one contiguous run of the table; each path is stored once, in its row. A path is found
#: through ``path_key``, a 64-bit hash of it, and compared in full (docs/performance.rst).
SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    device_id   TEXT NOT NULL,      -- u64 as decimal text: SQLite integers are signed 64-bit
    state       TEXT NOT NULL DEFAULT 'complete',
    start_us    INTEGER NOT NULL,
    path_key    INTEGER NOT NULL,   -- hash of path (see path_key)
    end_us      INTEGER NOT NULL,
    size_bytes  INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL DEFAULT 0,
    reason      TEXT NOT NULL DEFAULT '',   -- why a bad/overlap/unnamed file is not served
    path        TEXT NOT NULL,
    PRIMARY KEY (device_id, state, start_us, path_key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS segments_by_path ON segments (path_key);
CREATE INDEX IF NOT EXISTS segments_by_end ON segments (device_id, state, end_us);
-- Longest segment ever indexed per device: bounds the overlap query to an index range.
CREATE TABLE IF NOT EXISTS device_stats (
    device_id       TEXT PRIMARY KEY,
    max_duration_us INTEGER NOT NULL
);
"""
COLUMNS = "device_id, state, start_us, path_key, end_us, size_bytes, mtime_ns, reason, path"


def path_key(path: str) -> int:
    """The signed 64-bit key a path is looked up by (rows with equal keys are told apart by
    comparing the path itself)."""
    digest = hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def migrate(conn: sqlite3.Connection) -> None:
    """Rewrite an index of an earlier schema (a rowid table keyed by path, which stored every
    path twice: in its row and in the key's index) into the current one, in one transaction,
    then give the freed pages back to the file system."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(segments)")}
    if not columns or "path_key" in columns:
        return  # a new index, or already current
    log.info("archive index: rewriting %s into the schema with each path stored once",
             conn.execute("PRAGMA database_list").fetchone()[2])
    conn.execute("BEGIN IMMEDIATE")
    try:
        if "reason" not in columns:  # schema 1
            conn.execute("ALTER TABLE segments ADD COLUMN reason TEXT NOT NULL DEFAULT ''")
        conn.execute("DROP INDEX IF EXISTS segments_by_start")
        conn.execute("DROP INDEX IF EXISTS segments_by_end")
        conn.execute("ALTER TABLE segments RENAME TO segments_before")
        conn.execute(SCHEMA.split(";", 1)[0])  # the new segments table
        conn.execute(
            f"INSERT OR REPLACE INTO segments ({COLUMNS}) SELECT device_id, state, start_us,"
            " path_key(path), end_us, size_bytes, mtime_ns, reason, path FROM segments_before")
        conn.execute("DROP TABLE segments_before")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    try:  # the rewrite is done; giving the space back is a bonus (it needs as much again free)
        conn.execute("VACUUM")
    except sqlite3.OperationalError as exc:
        log.warning("archive index: rewritten, but not compacted (%s)", exc)
