"""Blocking file-system steps of an export (run in the I/O executor, never on the loop)."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from sense_plugin.errors import StorageError
from sense_plugin.export.manifest import MANIFEST_NAME
from sense_plugin.export.model import Export, Job
from sense_plugin.export.paths import confirm_inside, output_name
from sense_plugin.export.worker import TEMP_SUFFIX

FREE_SPACE_RESERVE_BYTES = 16 * 1024 * 1024


def job_output_path(export: Export, job: Job) -> Path:
    """The final path of a job's output file."""
    return export.directory / output_name(job.device_name, job.device_id, job.start_us, export.fmt)


def prepare_directory(export: Export, roots: tuple[Path, ...], estimate_bytes: int) -> None:
    """Create the export directory, re-check confinement, and check free space (-1007)."""
    try:
        export.directory.mkdir(parents=True, exist_ok=True)
        confirm_inside(export.directory, roots)
        free = shutil.disk_usage(export.directory).free
    except OSError as exc:
        raise StorageError(f"cannot create the export directory: {exc.strerror}") from None
    if free < estimate_bytes + FREE_SPACE_RESERVE_BYTES:
        raise StorageError(
            f"not enough free space for this device: about {estimate_bytes // 1_000_000} MB "
            f"needed, {free // 1_000_000} MB free"
        )


def remove_partial(export: Export, job: Job) -> None:
    """Delete a job's temporary file left by an interrupted run."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(str(job_output_path(export, job)) + TEMP_SUFFIX)


def remove_export_files(export: Export) -> None:
    """Delete an export's outputs, temporaries and manifest, then its directory if empty."""
    for job in export.jobs:
        final = job_output_path(export, job)
        for path in (final, Path(str(final) + TEMP_SUFFIX)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    with contextlib.suppress(FileNotFoundError):
        (export.directory / MANIFEST_NAME).unlink()
    with contextlib.suppress(OSError):
        export.directory.rmdir()
