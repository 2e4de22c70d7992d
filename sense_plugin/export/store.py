"""Durable job store: exports and their device jobs in SQLite in the data directory.

The store is synchronous; the engine calls it from one dedicated thread so the event loop
never waits on SQLite and writes are serialised on a single connection.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sense_plugin.errors import ConfigError, GeneralError
from sense_plugin.export.model import Export, FileInfo, Gap, Job, Status
from sense_plugin.export.options import ExportOptions

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS exports (
    export_id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL, created_us INTEGER NOT NULL, path TEXT NOT NULL,
    out_base TEXT NOT NULL, format TEXT NOT NULL, name TEXT NOT NULL,
    bandwidth_limit_kbps INTEGER NOT NULL, retried_from INTEGER,
    finished_us INTEGER, expires_us INTEGER, options TEXT
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
_JOB_COLUMNS = ("status", "progress", "bytes_written", "bandwidth_kbps", "errorcode",
                "description", "started_us", "finished_us", "file", "stopped")
#: Columns added after the first release: (table, column, declaration), added on open.
MIGRATIONS = (("exports", "options", "TEXT"),
              ("jobs", "stopped", "INTEGER NOT NULL DEFAULT 0"))


class StoreDamagedError(ConfigError):
    """The job store cannot be opened or read: the server stops (exit 2) naming the file."""


class ExportStore:
    """Persistence of :class:`Export` records; ids are given by the engine (0: the next
    AUTOINCREMENT id), never reused."""

    def __init__(self, db_path: Path) -> None:
        self.path = db_path
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
        except sqlite3.DatabaseError as exc:
            raise self.damaged(str(exc)) from None
        if check is None or check[0] != "ok":
            raise self.damaged(f"integrity check says {check[0] if check else 'nothing'}")

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
            incident = uuid.uuid4().hex[:12]
            log.error("incident %s: job store %s failed: %s", incident, action, exc)
            raise GeneralError(
                f"the job store could not {action} (database locked, read-only or damaged); "
                f"incident {incident}"
            ) from None

    def insert(self, export: Export) -> int:
        """Store a new export and its jobs in one transaction; returns the new export id."""
        with self._translate("save the export"):
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                cur.execute(
                    "INSERT INTO exports (export_id, owner, created_us, path, out_base, format,"
                    " name, bandwidth_limit_kbps, retried_from, options)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (export.export_id or None, export.owner, export.created_us, export.path,
                     export.out_base, export.fmt, export.name, export.bandwidth_limit_kbps,
                     export.retried_from, export.options.dumps()),
                )
                export_id = int(cur.lastrowid or 0)
                cur.executemany(
                    f"INSERT INTO jobs ({_JOB_INSERT}) VALUES ({','.join('?' * 17)})",
                    [(export_id, j.index, str(j.server_id), str(j.device_id), j.device_name,
                      j.start_us, j.end_us, *_job_values(j)) for j in export.jobs],
                )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return export_id

    def update_job(self, job: Job) -> None:
        """Persist a job's status, figures and file facts."""
        assignments = ", ".join(f"{c}=?" for c in _JOB_COLUMNS)
        with self._translate("update a job"):
            self._db.execute(
                f"UPDATE jobs SET {assignments}, end_us=? WHERE export_id=? AND idx=?",
                (*_job_values(job), job.end_us, job.export_id, job.index))

    def update_export(self, export: Export) -> None:
        """Persist an export's finish time and retention deadline."""
        with self._translate("update an export"):
            self._db.execute("UPDATE exports SET finished_us=?, expires_us=? WHERE export_id=?",
                             (export.finished_us, export.expires_us, export.export_id))

    def delete(self, export_ids: list[int]) -> None:
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

    def load_all(self) -> list[Export]:
        """Every stored export with its jobs, oldest first (a damaged store stops the server)."""
        try:
            return self._load_all()
        except (sqlite3.DatabaseError, ValueError, KeyError, TypeError) as exc:
            raise self.damaged(str(exc)) from None

    def _load_all(self) -> list[Export]:
        exports = {
            row[0]: Export(export_id=row[0], owner=row[1], created_us=row[2], path=row[3],
                           out_base=row[4], fmt=row[5], name=row[6],
                           bandwidth_limit_kbps=row[7], retried_from=row[8],
                           finished_us=row[9], expires_us=row[10],
                           options=ExportOptions.loads(row[11]))
            for row in self._db.execute(
                "SELECT export_id, owner, created_us, path, out_base, format, name,"
                " bandwidth_limit_kbps, retried_from, finished_us, expires_us, options"
                " FROM exports ORDER BY export_id")
        }
        for row in self._db.execute(
                f"SELECT {_JOB_INSERT} FROM jobs ORDER BY export_id, idx"):
            exports[row[0]].jobs.append(_job_from_row(row))
        return list(exports.values())

_JOB_INSERT = ("export_id, idx, server_id, device_id, device_name, start_us, end_us, "
               + ", ".join(_JOB_COLUMNS))


def _migrate(db: sqlite3.Connection) -> None:
    """Add the columns a store of an older release lacks (existing rows get the default)."""
    for table, column, declaration in MIGRATIONS:
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            log.info("job store: added column %s.%s", table, column)


def _job_values(job: Job) -> tuple[Any, ...]:
    file_json = (json.dumps([asdict(f) for f in job.parts]) if job.parts
                 else None if job.file is None else json.dumps(asdict(job.file)))
    return (job.status.value, job.progress, job.bytes_written, job.bandwidth_kbps,
            job.errorcode, job.description, job.started_us, job.finished_us, file_json,
            int(job.stopped))


def _job_from_row(row: tuple[Any, ...]) -> Job:
    file_info = None
    parts: tuple[FileInfo, ...] = ()
    if row[15]:
        data = json.loads(row[15])
        parts = tuple(_file(d) for d in data) if isinstance(data, list) else ()
        file_info = parts[0] if parts else _file(data)
    return Job(
        export_id=row[0], index=row[1], server_id=int(row[2]), device_id=int(row[3]),
        device_name=row[4], start_us=row[5], end_us=row[6], status=Status(row[7]),
        progress=row[8], bytes_written=row[9], bandwidth_kbps=row[10], errorcode=row[11],
        description=row[12], started_us=row[13], finished_us=row[14], file=file_info,
        stopped=bool(row[16]), parts=parts,
    )


def _file(data: dict[str, Any]) -> FileInfo:
    data["gaps"] = tuple(Gap(**g) for g in data.get("gaps", ()))
    return FileInfo(**data)
