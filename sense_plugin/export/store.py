"""The SQLite job store: exports and their device jobs in the data directory (one server).

The store is synchronous and confined to one thread: :class:`~.localstore.LocalJobStore`
runs every call on its dedicated thread, so the event loop never waits on SQLite and writes
are serialised on a single connection.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sense_plugin.errors import ConfigError, incident_error
from sense_plugin.export.model import Export, Job, Status
from sense_plugin.export.storage import ExportQuery
from sense_plugin.export.storerows import (
    EXPORT_COLUMNS,
    JOB_COLUMNS,
    JOB_STATE,
    export_from_row,
    export_values,
    job_from_row,
    job_row,
    job_values,
)

log = logging.getLogger(__name__)
SQLITE_MAX_INTEGER = 2**63 - 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS exports (
    export_id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL, created_us INTEGER NOT NULL, path TEXT NOT NULL,
    out_base TEXT NOT NULL, format TEXT NOT NULL, name TEXT NOT NULL,
    bandwidth_limit_kbps INTEGER NOT NULL, retried_from INTEGER,
    finished_us INTEGER, expires_us INTEGER, options TEXT, status TEXT
);
CREATE TABLE IF NOT EXISTS jobs (
    export_id INTEGER NOT NULL REFERENCES exports(export_id) ON DELETE CASCADE,
    idx INTEGER NOT NULL, server_id TEXT NOT NULL, device_id TEXT NOT NULL,
    device_name TEXT NOT NULL, start_us INTEGER NOT NULL, end_us INTEGER NOT NULL,
    status TEXT NOT NULL, progress INTEGER NOT NULL, bytes_written INTEGER NOT NULL,
    bandwidth_kbps INTEGER NOT NULL, errorcode INTEGER NOT NULL, description TEXT NOT NULL,
    started_us INTEGER, finished_us INTEGER, file TEXT,
    stopped INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (export_id, idx)
);
"""
#: Made after the migrations (they index columns an older store lacks).
INDEXES = """
CREATE INDEX IF NOT EXISTS exports_by_owner ON exports(owner, export_id);
CREATE INDEX IF NOT EXISTS exports_by_status ON exports(status, export_id);
CREATE INDEX IF NOT EXISTS exports_unfinished ON exports(finished_us);
"""
#: Columns added after the first release: (table, column, declaration), added on open.
MIGRATIONS = (("exports", "options", "TEXT"),
              ("jobs", "stopped", "INTEGER NOT NULL DEFAULT 0"),
              ("exports", "status", "TEXT"))


class StoreDamagedError(ConfigError):
    """The job store cannot be opened or read: the server stops (exit 2) naming the file."""


class ExportStore:
    """Persistence of :class:`Export` records; ids are given by the caller (0: the next
    AUTOINCREMENT id), never reused. Every export row carries its combined status, so lists
    filter and page in SQL."""

    def __init__(self, db_path: Path, *, reader: bool = False) -> None:
        """Open (create, upgrade, check) the store; ``reader``: a second, read-only
        connection to a store opened already, for queries that must not wait behind writes
        (WAL: readers see the last commit and never block the writer)."""
        self.path = db_path
        if reader:
            try:
                self._db = sqlite3.connect(db_path, check_same_thread=False,
                                           isolation_level=None)
                self._db.execute("PRAGMA query_only=ON")
                self._db.execute("PRAGMA busy_timeout=2000")
            except sqlite3.DatabaseError as exc:
                raise self.damaged(str(exc)) from None
            return
        db_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=2000")
            self._db.executescript(SCHEMA)
            _migrate(self._db)
            check = self._db.execute("PRAGMA quick_check").fetchone()
            self._fill_status()
        except sqlite3.DatabaseError as exc:
            raise self.damaged(str(exc)) from None
        if check is None or check[0] != "ok":
            raise self.damaged(f"integrity check says {check[0] if check else 'nothing'}")

    def _fill_status(self) -> None:
        """Store the combined status of exports written by a release that did not."""
        missing = self._select("WHERE status IS NULL", ())
        self._db.executemany("UPDATE exports SET status=? WHERE export_id=?",
                             [(e.status.value, e.export_id) for e in missing])

    def damaged(self, why: str) -> StoreDamagedError:
        """The error that stops the server for a store that cannot be trusted."""
        return StoreDamagedError(
            f"the job store {self.path} is damaged ({why}); stop, restore it from a backup "
            "(or move it away together with the export directories), then start again")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        """Turn SQLite failures (locked, read-only, corrupt) into a logged, coded error."""
        try:
            yield
        except sqlite3.Error as exc:
            raise incident_error(
                log, f"job store {action} failed: {exc}",
                f"the job store could not {action} (database locked, read-only or damaged)",
                traceback=False) from None

    def insert(self, export: Export) -> int:
        """Store a new export and its jobs in one transaction; returns the new export id."""
        with self._translate("save the export"):
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                cur.execute(f"INSERT INTO exports ({EXPORT_COLUMNS}, status)"
                            f" VALUES ({','.join('?' * 13)})", export_values(export))
                export_id = int(cur.lastrowid or 0)
                rows = [job_row(j) for j in export.jobs]
                cur.executemany(f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES ({','.join('?' * 17)})",
                                [(export_id, *row[1:]) for row in rows])
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return export_id

    def update_job(self, job: Job, export_status: Status | None = None) -> None:
        """Persist a job's status, figures and file facts (and its export's combined status)."""
        assignments = ", ".join(f"{c}=?" for c in JOB_STATE)
        with self._translate("update a job"):
            self._db.execute("BEGIN")
            try:
                self._db.execute(
                    f"UPDATE jobs SET {assignments}, end_us=? WHERE export_id=? AND idx=?",
                    (*job_values(job), job.end_us, job.export_id, job.index))
                if export_status is not None:
                    self._db.execute("UPDATE exports SET status=? WHERE export_id=?",
                                     (export_status.value, job.export_id))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def update_export(self, export: Export) -> None:
        """Persist an export's finish time, retention deadline and combined status."""
        with self._translate("update an export"):
            self._db.execute(
                "UPDATE exports SET finished_us=?, expires_us=?, status=? WHERE export_id=?",
                (export.finished_us, export.expires_us, export.status.value, export.export_id))

    def delete(self, export_ids: Sequence[int]) -> None:
        """Purge export records (history retention)."""
        with self._translate("purge exports"):
            self._db.executemany("DELETE FROM exports WHERE export_id=?",
                                 [(i,) for i in export_ids])

    def max_id(self) -> int:
        """The highest export id this store ever gave out (AUTOINCREMENT's sequence)."""
        with self._translate("read the last export id"):
            row = self._db.execute(
                "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name='exports'), 0),"
                " coalesce((SELECT max(export_id) FROM exports), 0))").fetchone()
        return int(row[0] or 0)

    # -- queries -------------------------------------------------------------------------
    def load_all(self) -> list[Export]:
        """Every stored export with its jobs, oldest first (a damaged store stops the server)."""
        try:
            return self._select("", ())
        except (sqlite3.DatabaseError, ValueError, KeyError, TypeError) as exc:
            raise self.damaged(str(exc)) from None

    def get(self, export_id: int) -> Export | None:
        if export_id > SQLITE_MAX_INTEGER:  # no such id was ever given (nor can be stored)
            return None
        with self._translate("read an export"):
            found = self._select("WHERE export_id=?", (export_id,))
        return found[0] if found else None

    def unfinished(self) -> list[Export]:
        """Exports without a finish time (a damaged store stops the server)."""
        try:
            return self._select("WHERE finished_us IS NULL", ())
        except (sqlite3.DatabaseError, ValueError, KeyError, TypeError) as exc:
            raise self.damaged(str(exc)) from None

    def page(self, query: ExportQuery) -> tuple[list[Export], int]:
        where, params = _where(query)
        with self._translate("list exports"):
            total = int(self._db.execute(f"SELECT count(*) FROM exports {where}",
                                         params).fetchone()[0])
            order = "DESC" if query.newest_first else "ASC"
            limit = -1 if query.limit is None else query.limit
            exports = self._select(f"{where} ORDER BY export_id {order} LIMIT ? OFFSET ?",
                                   (*params, limit, query.offset), ordered=True)
        return exports, total

    def expiring(self, at_us: int) -> list[Export]:
        with self._translate("read expiring exports"):
            return self._select("WHERE expires_us IS NOT NULL AND expires_us<=? AND status IN"
                                " ('COMPLETED','FAILED')", (at_us,))

    def finished_before(self, at_us: int) -> list[Export]:
        with self._translate("read finished exports"):
            return self._select("WHERE finished_us IS NOT NULL AND finished_us<=?", (at_us,))

    def count_by_status(self) -> tuple[dict[Status, int], dict[Status, int]]:
        with self._translate("count exports"):
            exports = self._db.execute("SELECT status, count(*) FROM exports GROUP BY status")
            by_export = {Status(status): int(count) for status, count in exports if status}
            jobs = self._db.execute("SELECT status, count(*) FROM jobs GROUP BY status")
            return by_export, {Status(status): int(count) for status, count in jobs}

    def directories(self) -> dict[str, int]:
        """Every export's directory → its id (the nesting check at admission)."""
        with self._translate("read export directories"):
            rows = self._db.execute("SELECT out_base, export_id FROM exports")
            return {str(Path(base) / str(export_id)): export_id for base, export_id in rows}

    def ids(self) -> set[int]:
        with self._translate("read export ids"):
            return {row[0] for row in self._db.execute("SELECT export_id FROM exports")}

    def _select(self, where: str, params: tuple[Any, ...], ordered: bool = False) -> list[Export]:
        """Exports matching ``where`` (an SQL tail on ``exports``) with their jobs."""
        rows = self._db.execute(f"SELECT {EXPORT_COLUMNS} FROM exports {where}"
                                + ("" if ordered else " ORDER BY export_id"), params).fetchall()
        exports = {row[0]: export_from_row(row) for row in rows}
        if not exports:
            return []
        if len(exports) <= 500:
            marks = ",".join("?" * len(exports))
            jobs = self._db.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE export_id IN ({marks})"
                                    " ORDER BY export_id, idx", tuple(exports))
        else:
            jobs = self._db.execute(f"SELECT {JOB_COLUMNS} FROM jobs ORDER BY export_id, idx")
        for row in jobs:
            export = exports.get(row[0])
            if export is not None:
                export.jobs.append(job_from_row(row))
        return list(exports.values())


def _where(query: ExportQuery) -> tuple[str, tuple[Any, ...]]:
    clauses: list[str] = []
    params: list[Any] = []
    if query.owner is not None:
        clauses.append("owner=?")
        params.append(query.owner)
    if query.statuses is not None:
        clauses.append(f"status IN ({','.join('?' * len(query.statuses))})")
        params.extend(sorted(s.value for s in query.statuses))
    if query.retried_from is not None:
        clauses.append("retried_from=?")
        params.append(query.retried_from)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


def _migrate(db: sqlite3.Connection) -> None:
    """Add the columns a store of an older release lacks (existing rows get the default)."""
    for table, column, declaration in MIGRATIONS:
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            log.info("job store: added column %s.%s", table, column)
    db.executescript(INDEXES)
