"""Durable SQLite index of archive segments: which files cover device D in [t0, t1).

Synchronous and thread-safe (one connection guarded by a lock, WAL journal), so it is called
from executor threads and recorder threads, never from the event loop.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sense_plugin.archive.indexschema import COLUMNS, SCHEMA, SCHEMA_VERSION, migrate, path_key
from sense_plugin.archive.segment import STATE_COMPLETE, FileRecord, Segment
from sense_plugin.timestamps import GAP_TOLERANCE_US

if TYPE_CHECKING:
    from sense_plugin.configmodel import Config

#: ``Segment`` and ``FileRecord`` (defined in ``segment``) are what the index returns.
__all__ = ["DEFAULT_JOIN_TOLERANCE_US", "INDEX_FILENAME", "ArchiveIndex", "FileRecord",
           "Segment", "index_path"]

#: The index's file in ``[server] data_dir``.
INDEX_FILENAME = "archive.sqlite3"

#: Recorded intervals closer than this are reported as one: the gap tolerance of every
#: export too (docs/evidence.rst, "Gaps").
DEFAULT_JOIN_TOLERANCE_US = GAP_TOLERANCE_US

#: Complete segments of device ?1 overlapping [?2, ?3): the start column is bounded below by
#: the device's longest segment, so this is an index range scan however large the archive.
_IN_RANGE = (" WHERE device_id = ?1 AND state = 'complete'"
             " AND start_us >= ?2 - (SELECT COALESCE(MAX(max_duration_us), 0)"
             "                       FROM device_stats WHERE device_id = ?1)"
             " AND start_us < ?3 AND end_us > ?2"
             " ORDER BY start_us, end_us")


def index_path(config: Config) -> Path:
    """Where the archive index of this configuration lives."""
    return config.server.data_dir / INDEX_FILENAME


class ArchiveIndex:
    """The segment table of ``<data_dir>/archive.sqlite3``.

    Raises :class:`sqlite3.Error` on database failures; callers translate them at their edge.
    """

    def __init__(self, db_path: Path) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self.db_path = db_path
        self.created = not db_path.exists()
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None,
                                     timeout=10.0)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.create_function("path_key", 1, path_key, deterministic=True)
            migrate(self._conn)
            self._conn.executescript(SCHEMA)
            self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error:
            self._conn.close()
            raise

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, args: tuple[object, ...]) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    # -- writes ---------------------------------------------------------------------------

    def add(self, segment: Segment, *, mtime_ns: int = 0) -> None:
        """Index (or re-index) a complete segment; its path is the key."""
        self._upsert(segment.device_id, segment.path, segment.start_us, segment.end_us,
                     segment.size_bytes, mtime_ns, STATE_COMPLETE)

    def add_many(self, segments: list[tuple[Segment, int]]) -> None:
        """Index many ``(segment, mtime_ns)`` in one transaction (rebuilds, bulk loads)."""
        with self._transaction() as conn:
            for segment, mtime_ns in segments:
                self._insert(conn, segment.device_id, segment.path, segment.start_us,
                             segment.end_us, segment.size_bytes, mtime_ns, STATE_COMPLETE)

    def mark(self, device_id: int, path: Path, *, size_bytes: int, mtime_ns: int,
             state: str, reason: str = "") -> None:
        """Remember a file that is not served (``bad``, ``overlap``, ``unnamed``) and why, so
        that it is not probed or logged again until it changes."""
        self._upsert(device_id, path, 0, 0, size_bytes, mtime_ns, state, reason)

    def _upsert(self, device_id: int, path: Path, start_us: int, end_us: int,
                size_bytes: int, mtime_ns: int, state: str, reason: str = "") -> None:
        with self._transaction() as conn:
            self._insert(conn, device_id, path, start_us, end_us, size_bytes, mtime_ns, state,
                         reason)

    @staticmethod
    def _insert(conn: sqlite3.Connection, device_id: int, path: Path, start_us: int,
                end_us: int, size_bytes: int, mtime_ns: int, state: str,
                reason: str = "") -> None:
        device, text = str(device_id), str(path)
        key = path_key(text)
        # the path is the identity of a row: its earlier row goes, whatever its state or start
        conn.execute("DELETE FROM segments WHERE path_key = ? AND path = ?", (key, text))
        conn.execute(
            f"INSERT OR REPLACE INTO segments ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (device, state, start_us, key, end_us, size_bytes, mtime_ns, reason, text),
        )
        if state == STATE_COMPLETE:
            conn.execute(
                "INSERT INTO device_stats (device_id, max_duration_us) VALUES (?, ?)"
                " ON CONFLICT (device_id) DO UPDATE"
                " SET max_duration_us = MAX(max_duration_us, excluded.max_duration_us)",
                (device, max(0, end_us - start_us)),
            )

    def remove(self, path: Path) -> None:
        """Forget a file (no-op when it is not indexed)."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM segments WHERE path_key = ? AND path = ?",
                         (path_key(str(path)), str(path)))

    # -- reads ----------------------------------------------------------------------------

    def segments(self, device_id: int, start_us: int, end_us: int) -> list[Segment]:
        """Complete segments overlapping ``[start_us, end_us)``, ordered by start then end.

        The start column is bounded below by the device's longest segment, so the query is
        an index range scan however large the archive.
        """
        rows = self._query(
            "SELECT start_us, end_us, path, size_bytes FROM segments" + _IN_RANGE,
            (str(device_id), start_us, end_us),
        )
        return [Segment(device_id, s, e, p, n) for s, e, p, n in rows]

    def recorded_range(self, device_id: int) -> tuple[int, int] | None:
        """First recorded instant and end of the last recording, or None when empty."""
        device = str(device_id)
        rows = self._query(
            "SELECT (SELECT MIN(start_us) FROM segments WHERE device_id = ?1"
            "        AND state = 'complete'),"
            "       (SELECT MAX(end_us) FROM segments WHERE device_id = ?1"
            "        AND state = 'complete')",
            (device,),
        )
        first, last = rows[0]
        if first is None or last is None:
            return None
        return int(first), int(last)

    def intervals(self, device_id: int, start_us: int, end_us: int,
                  join_tolerance_us: int = DEFAULT_JOIN_TOLERANCE_US) -> list[tuple[int, int]]:
        """Recorded intervals clipped to ``[start_us, end_us)``; the holes between are gaps.

        Segments that overlap or whose gap is at most ``join_tolerance_us`` are merged.
        """
        rows = self._query(
            "SELECT start_us, end_us FROM segments" + _IN_RANGE,
            (str(device_id), start_us, end_us),
        )
        merged: list[list[int]] = []
        for seg_start, seg_end in rows:
            if merged and seg_start <= merged[-1][1] + join_tolerance_us:
                merged[-1][1] = max(merged[-1][1], seg_end)
            else:
                merged.append([seg_start, seg_end])
        return [(max(s, start_us), min(e, end_us)) for s, e in merged]

    def device_bytes(self, device_id: int) -> int:
        """Total size of the device's complete segments."""
        rows = self._query(
            "SELECT COALESCE(SUM(size_bytes), 0) FROM segments"
            " WHERE device_id = ? AND state = 'complete'",
            (str(device_id),),
        )
        return int(rows[0][0])

    def oldest(self, device_id: int, limit: int, after: tuple[int, str] | None = None
               ) -> list[Segment]:
        """Complete segments in start order, from the oldest (or after ``(start_us, path)``)."""
        after_start, after_path = after if after is not None else (-(2**63), "")
        rows = self._query(
            "SELECT start_us, end_us, path, size_bytes FROM segments"
            " WHERE device_id = ? AND state = 'complete' AND (start_us, path) > (?, ?)"
            " ORDER BY start_us, path LIMIT ?",
            (str(device_id), after_start, after_path, limit),
        )
        return [Segment(device_id, s, e, p, n) for s, e, p, n in rows]

    def files(self, device_id: int) -> dict[Path, FileRecord]:
        """Every file the index knows for the device, whatever its state."""
        rows = self._query(
            "SELECT path, size_bytes, mtime_ns, state FROM segments WHERE device_id = ?",
            (str(device_id),),
        )
        records = (FileRecord(Path(str(p)), int(n), int(m), str(st))
                   for p, n, m, st in rows)
        return {record.path: record for record in records}

    def file_stats(self, device_id: int, paths: Iterable[Path] | None = None
                   ) -> dict[str, tuple[int, int]]:
        """``path text → (size_bytes, mtime_ns)`` of every file the index knows for the device
        (or of these paths only), whatever its state: what a rescan compares with the disk."""
        if paths is None:
            rows = self._query("SELECT path, size_bytes, mtime_ns FROM segments"
                               " WHERE device_id = ?", (str(device_id),))
            return {p: (n, m) for p, n, m in rows}
        wanted = {str(path) for path in paths}
        keys = sorted({path_key(text) for text in wanted})
        found: dict[str, tuple[int, int]] = {}
        for offset in range(0, len(keys), 500):
            chunk = keys[offset:offset + 500]
            rows = self._query(
                "SELECT path, size_bytes, mtime_ns FROM segments WHERE device_id = ?"
                f" AND path_key IN ({', '.join('?' * len(chunk))})", (str(device_id), *chunk))
            found.update((p, (n, m)) for p, n, m in rows if p in wanted)
        return found

    def skipped(self, device_id: int, limit: int = -1) -> tuple[int, list[tuple[Path, str]]]:
        """How many of the device's files are not served, and (up to ``limit``) which and why."""
        device = str(device_id)
        where = " WHERE device_id = ? AND state IN ('bad', 'overlap', 'unnamed')"
        total = self._query("SELECT COUNT(*) FROM segments" + where, (device,))[0][0]
        rows = self._query("SELECT path, state, reason FROM segments" + where
                           + " ORDER BY path LIMIT ?", (device, limit))
        return int(total), [(Path(str(p)), str(r) or str(st)) for p, st, r in rows]

    def count(self, device_id: int) -> int:
        """Number of complete segments of the device."""
        rows = self._query(
            "SELECT COUNT(*) FROM segments WHERE device_id = ? AND state = 'complete'",
            (str(device_id),),
        )
        return int(rows[0][0])

