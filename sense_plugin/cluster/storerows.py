"""Rows of ``sense_exports`` and ``sense_jobs``: the SQL text and the model <-> row mapping.

Timestamps are bigint microseconds as in SQLite; options and file facts are jsonb in the
same JSON shapes as SQLite's text columns (``ExportOptions.to_json``; a job's file as one
object, a split job's parts as a list), so a store can be copied from one to the other.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from psycopg.types.json import Jsonb

from sense_plugin.export.model import Export, Job, Status, combine_statuses
from sense_plugin.filemodel import FileInfo, Gap
from sense_plugin.media.exportoptions import ExportOptions

_EXPORT = ("export_id", "owner", "created_us", "path", "out_base", "format", "name",
           "bandwidth_limit_kbps", "retried_from", "finished_us", "expires_us", "options",
           "status")
_JOB_STATE = ("status", "progress", "bytes_written", "bandwidth_kbps", "errorcode",
              "description", "started_us", "finished_us", "file", "stopped", "end_us")
_JOB = ("export_id", "idx", "server_id", "device_id", "device_name", "start_us",
        *_JOB_STATE)


def _placeholders(columns: tuple[str, ...]) -> str:
    return ", ".join(f"%({c})s" for c in columns)


INSERT_EXPORT = (f"INSERT INTO sense_exports ({', '.join(_EXPORT)}) "
                 f"VALUES ({_placeholders(_EXPORT)})")
INSERT_JOB = f"INSERT INTO sense_jobs ({', '.join(_JOB)}) VALUES ({_placeholders(_JOB)})"
#: The export row locked for a change of its jobs: writers of one export take turns.
LOCK_EXPORT = "SELECT finished_us FROM sense_exports WHERE export_id = %s FOR UPDATE"
UPDATE_JOB = (f"UPDATE sense_jobs SET {', '.join(f'{c} = %({c})s' for c in _JOB_STATE)} "
              "WHERE export_id = %(export_id)s AND idx = %(idx)s")
JOB_STATUSES = "SELECT status FROM sense_jobs WHERE export_id = %s ORDER BY idx"
UPDATE_EXPORT = ("UPDATE sense_exports SET finished_us = %(finished_us)s, "
                 "expires_us = %(expires_us)s WHERE export_id = %(export_id)s")
SET_STATUS = "UPDATE sense_exports SET status = %s WHERE export_id = %s"
#: Exports (``{where}``, ordered, paged) with their jobs: one row per job, one round trip.
SELECT = """
SELECT e.export_id, e.owner, e.created_us, e.path, e.out_base, e.format, e.name,
       e.bandwidth_limit_kbps, e.retried_from, e.finished_us, e.expires_us, e.options,
       j.idx, j.server_id, j.device_id, j.device_name, j.start_us, j.end_us, j.status,
       j.progress, j.bytes_written, j.bandwidth_kbps, j.errorcode, j.description,
       j.started_us, j.finished_us, j.file, j.stopped
FROM (SELECT * FROM sense_exports {where} ORDER BY export_id {direction}
      LIMIT %(limit)s OFFSET %(offset)s) e
LEFT JOIN sense_jobs j ON j.export_id = e.export_id
ORDER BY e.export_id {direction}, j.idx"""
COUNT = "SELECT count(*) FROM sense_exports {where}"


def combined_status(statuses: list[Status], finished_us: int | None) -> Status:
    """An export's status from its stored jobs' (as ``Export.status`` from its own)."""
    status = combine_statuses(statuses)
    if status in (Status.COMPLETED, Status.FAILED) and finished_us is None:
        return Status.SYNCING
    return status


def export_params(export: Export) -> dict[str, Any]:
    return {"export_id": export.export_id, "owner": export.owner,
            "created_us": export.created_us, "path": export.path,
            "out_base": export.out_base, "format": export.fmt, "name": export.name,
            "bandwidth_limit_kbps": export.bandwidth_limit_kbps,
            "retried_from": export.retried_from, "finished_us": export.finished_us,
            "expires_us": export.expires_us, "options": Jsonb(export.options.to_json()),
            "status": export.status.value}


def job_params(export: Export, job: Job) -> dict[str, Any]:
    """Every column of ``job`` (its export id taken from ``export``)."""
    files: Any = ([asdict(f) for f in job.parts] if job.parts
                  else None if job.file is None else asdict(job.file))
    return {"export_id": export.export_id, "idx": job.index, "server_id": job.server_id,
            "device_id": job.device_id, "device_name": job.device_name,
            "start_us": job.start_us, "end_us": job.end_us, "status": job.status.value,
            "progress": job.progress, "bytes_written": job.bytes_written,
            "bandwidth_kbps": job.bandwidth_kbps, "errorcode": job.errorcode,
            "description": job.description, "started_us": job.started_us,
            "finished_us": job.finished_us,
            "file": None if files is None else Jsonb(files), "stopped": job.stopped}


def exports_from_rows(rows: list[tuple[Any, ...]]) -> list[Export]:
    """The exports of a :data:`SELECT` result, in its order, each with its jobs."""
    exports: dict[int, Export] = {}
    for row in rows:
        export = exports.get(row[0])
        if export is None:
            export = exports[row[0]] = Export(
                export_id=row[0], owner=row[1], created_us=row[2], path=row[3],
                out_base=row[4], fmt=row[5], name=row[6], bandwidth_limit_kbps=row[7],
                retried_from=row[8], finished_us=row[9], expires_us=row[10],
                options=ExportOptions.from_json(row[11]))
        if row[12] is not None:
            export.jobs.append(_job(row[0], row[12:]))
    return list(exports.values())


def _job(export_id: int, row: tuple[Any, ...]) -> Job:
    file_info: FileInfo | None = None
    parts: tuple[FileInfo, ...] = ()
    data = row[14]
    if isinstance(data, list):
        parts = tuple(_file(d) for d in data)
        file_info = parts[0] if parts else None
    elif data:
        file_info = _file(data)
    return Job(
        export_id=export_id, index=row[0], server_id=int(row[1]), device_id=int(row[2]),
        device_name=row[3], start_us=row[4], end_us=row[5], status=Status(row[6]),
        progress=row[7], bytes_written=row[8], bandwidth_kbps=row[9], errorcode=row[10],
        description=row[11], started_us=row[12], finished_us=row[13], file=file_info,
        stopped=bool(row[15]), parts=parts)


def _file(data: dict[str, Any]) -> FileInfo:
    # rows written before gaps had a reason load with none
    gaps = tuple(Gap(int(g["start_us"]), int(g["end_us"]), str(g.get("reason", "")))
                 for g in data.get("gaps", ()))
    return FileInfo(**{**data, "gaps": gaps})
