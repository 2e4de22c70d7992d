"""How exports and jobs map to SQL rows (SQLite's job store; column lists and conversions)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from sense_plugin.export.model import Export, Job, Status
from sense_plugin.filemodel import FileInfo, Gap
from sense_plugin.media.exportoptions import ExportOptions

EXPORT_COLUMNS = ("export_id, owner, created_us, path, out_base, format, name, "
                  "bandwidth_limit_kbps, retried_from, finished_us, expires_us, options")
JOB_STATE = ("status", "progress", "bytes_written", "bandwidth_kbps", "errorcode",
             "description", "started_us", "finished_us", "file", "stopped")
JOB_COLUMNS = ("export_id, idx, server_id, device_id, device_name, start_us, end_us, "
               + ", ".join(JOB_STATE))


def export_values(export: Export) -> tuple[Any, ...]:
    """The ``EXPORT_COLUMNS`` of an export, then its combined status."""
    return (export.export_id or None, export.owner, export.created_us, export.path,
            export.out_base, export.fmt, export.name, export.bandwidth_limit_kbps,
            export.retried_from, export.finished_us, export.expires_us, export.options.dumps(),
            export.status.value)


def export_from_row(row: tuple[Any, ...]) -> Export:
    return Export(export_id=row[0], owner=row[1], created_us=row[2], path=row[3],
                  out_base=row[4], fmt=row[5], name=row[6], bandwidth_limit_kbps=row[7],
                  retried_from=row[8], finished_us=row[9], expires_us=row[10],
                  options=ExportOptions.loads(row[11]))


def job_values(job: Job) -> tuple[Any, ...]:
    """The ``JOB_STATE`` columns of a job."""
    file_json = (json.dumps([asdict(f) for f in job.parts]) if job.parts
                 else None if job.file is None else json.dumps(asdict(job.file)))
    return (job.status.value, job.progress, job.bytes_written, job.bandwidth_kbps,
            job.errorcode, job.description, job.started_us, job.finished_us, file_json,
            int(job.stopped))


def job_row(job: Job) -> tuple[Any, ...]:
    """All ``JOB_COLUMNS`` of a job."""
    return (job.export_id, job.index, str(job.server_id), str(job.device_id), job.device_name,
            job.start_us, job.end_us, *job_values(job))


def job_from_row(row: tuple[Any, ...]) -> Job:
    file_info = None
    parts: tuple[FileInfo, ...] = ()
    if row[15]:
        data = json.loads(row[15])
        parts = tuple(file_from_dict(d) for d in data) if isinstance(data, list) else ()
        file_info = parts[0] if parts else file_from_dict(data)
    return Job(
        export_id=row[0], index=row[1], server_id=int(row[2]), device_id=int(row[3]),
        device_name=row[4], start_us=row[5], end_us=row[6], status=Status(row[7]),
        progress=row[8], bytes_written=row[9], bandwidth_kbps=row[10], errorcode=row[11],
        description=row[12], started_us=row[13], finished_us=row[14], file=file_info,
        stopped=bool(row[16]), parts=parts,
    )


def file_from_dict(data: dict[str, Any]) -> FileInfo:
    data["gaps"] = tuple(Gap(**g) for g in data.get("gaps", ()))  # older rows: no reason
    return FileInfo(**data)
