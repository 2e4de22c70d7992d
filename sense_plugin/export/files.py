"""Blocking file-system steps of an export (run in the I/O executor, never on the loop).

Every step goes through :mod:`safefs`: directories are reached from an export root without
following symlinks, so nothing is written, read or deleted outside the roots.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from sense_plugin import safefs
from sense_plugin.errors import GeneralError, PathNotAllowedError, StorageError
from sense_plugin.export.manifest import MANIFEST_NAME
from sense_plugin.export.model import Export, Job, Status
from sense_plugin.media.messages import Written
from sense_plugin.outputpaths import TEMP_SUFFIX, device_prefix, is_part_temporary, output_name
from sense_plugin.signing import SIGNATURE_NAME

FREE_SPACE_RESERVE_BYTES = 16 * 1024 * 1024
log = logging.getLogger(__name__)


def job_file_name(export: Export, job: Job) -> str:
    """The final name of a job's output file (unique within its export: checked at admission).

    A snapshot's planned name carries the requested instant; once written, the file's own
    name (the shown frame's time) is the job's.
    """
    return job.file.name if job.file is not None else planned_name(export, job)


def planned_name(export: Export, job: Job) -> str:
    """The name a job's output is planned under (its temporary file: this + ``.part``)."""
    return output_name(job.device_name, job.device_id, job.start_us, export.fmt)


def job_output_path(export: Export, job: Job) -> Path:
    """The final path of a job's output file."""
    return export.directory / job_file_name(export, job)


def open_job_directory(export: Export, job: Job, roots: tuple[Path, ...],
                       estimate_bytes: int) -> int:
    """The export directory's fd, reached without symlinks; stale temp removed; free space.

    Raises -1004 when a component became a symlink, -1007 when the directory is gone or the
    disk lacks room for ``estimate_bytes``. The caller closes the fd.
    """
    try:
        fd = safefs.open_dir(export.directory, roots)
    except FileNotFoundError:
        raise StorageError(f"the export directory {export.directory} is gone") from None
    except OSError as exc:
        raise StorageError(f"cannot open the export directory: {exc.strerror}") from None
    try:
        _remove_temporaries(fd, planned_name(export, job))
        vfs = os.fstatvfs(fd)
    except BaseException:
        os.close(fd)
        raise
    free = vfs.f_bavail * vfs.f_frsize
    if free < estimate_bytes + FREE_SPACE_RESERVE_BYTES:
        os.close(fd)
        raise StorageError(
            f"not enough free space for this device: about {estimate_bytes // 1_000_000} MB "
            f"needed, {free // 1_000_000} MB free"
        )
    return fd


def confirm_output(export: Export, roots: tuple[Path, ...], dir_fd: int,
                   written: Written) -> None:
    """Prove that ``name`` under its final path is the file the worker wrote and hashed.

    The worker reports the device and inode of the descriptor it wrote and hashed, and the
    size; the final name (opened without following symlinks) must be that very inode with
    that size (else -18), and the export directory reached afresh from its root must still
    be the directory written into (else -1004).
    """
    try:
        with safefs.opened_dir(export.directory, roots) as fresh:
            moved = _identity(os.fstat(fresh)) != _identity(os.fstat(dir_fd))
    except FileNotFoundError:
        moved = True
    if moved:
        raise PathNotAllowedError(f"the export directory {export.directory} was moved or "
                                  "replaced while the device was written")
    name = written.info.name
    try:
        fd = safefs.open_regular(dir_fd, name)
    except OSError as exc:
        raise GeneralError(f"the finished file '{name}' cannot be opened: {exc.strerror}") \
            from None
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    if (*_identity(st), st.st_size) != (written.file_dev, written.file_ino,
                                        written.info.size_bytes):
        raise GeneralError(f"the file now named '{name}' is not the file that was written and "
                           "hashed; the device is not reported COMPLETED")


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def ensure_directory(export: Export, roots: tuple[Path, ...]) -> None:
    """Create the directory of an unfinished export accepted before directories were made at
    admission (an older version); one that exists already is this export's own."""
    with contextlib.suppress(StorageError, PathNotAllowedError, FileNotFoundError):
        safefs.make_export_dir(export.directory, roots)


def remove_partial(export: Export, job: Job, roots: tuple[Path, ...]) -> None:
    """Delete what a run of ``job`` that did not complete left: its temporary files (also the
    parts of a split, ``<planned>.pNNN.part``) and its whole cut waiting to be split (the
    planned name; no other device of a stream export has it, admission sees to that). A
    worker killed meanwhile cannot clean up after itself."""
    with contextlib.suppress(OSError, PathNotAllowedError), \
            safefs.opened_dir(export.directory, roots) as fd:
        planned = planned_name(export, job)
        _remove_temporaries(fd, planned)
        listed = {info.name for other in export.jobs for info in other.files}
        if not export.options.snapshot and planned not in listed:
            safefs.unlink_quietly(fd, planned)


def needs_tidying(export: Export) -> bool:
    """True for a finished export with a device that did not complete: its run may have been
    killed and left files (:func:`remove_leftovers`)."""
    return export.status is not Status.EXPIRED and any(
        job.status is not Status.COMPLETED for job in export.jobs)


def tidy_finished(exports: list[Export], roots: tuple[Path, ...]) -> None:
    """:func:`remove_leftovers` of each export, logged (at start, for finished exports)."""
    for export in exports:
        removed = remove_leftovers(export, roots)
        if removed:
            log.info("export %s (%s): deleted %d files of runs that did not complete: %s",
                     export.export_id, export.status.value, len(removed), ", ".join(removed))


def remove_leftovers(export: Export, roots: tuple[Path, ...]) -> list[str]:
    """Delete the files in a finished export's directory that one of its devices began (the
    name starts ``<device name>_<deviceid>_``) and that no device lists: parts, temporaries
    and whole cuts of runs that were killed. Returns the names deleted."""
    listed = {info.name for job in export.jobs for info in job.files}
    prefixes = tuple({device_prefix(job.device_name, job.device_id) for job in export.jobs})
    removed: list[str] = []
    with contextlib.suppress(FileNotFoundError, PathNotAllowedError), \
            safefs.opened_dir(export.directory, roots) as fd:
        for name in os.listdir(fd):
            if name.startswith(prefixes) and name not in listed:
                safefs.unlink_quietly(fd, name)
                removed.append(name)
    if removed and export.status is Status.REMOVED:
        safefs.remove_empty_dirs(export.directory, roots)
    return sorted(removed)


def _remove_temporaries(dir_fd: int, planned: str) -> None:
    """Delete what a run of a job interrupted hard left under its planned name: its one
    temporary file and those of a split or per-run cut (``<planned>.pNNN.part`` and what was
    written under them, docs/exports.rst "Worker records")."""
    safefs.unlink_quietly(dir_fd, planned + TEMP_SUFFIX)
    for name in os.listdir(dir_fd):
        if is_part_temporary(name, planned):
            safefs.unlink_quietly(dir_fd, name)


def remove_export_files(export: Export, roots: tuple[Path, ...]) -> None:
    """Delete an export's outputs, temporaries and manifest, then every folder left empty."""
    with contextlib.suppress(OSError, PathNotAllowedError), \
            safefs.opened_dir(export.directory, roots) as fd:
        for job in export.jobs:
            for info in job.files:
                safefs.unlink_quietly(fd, info.name)
            safefs.unlink_quietly(fd, job_file_name(export, job))
            _remove_temporaries(fd, planned_name(export, job))
        safefs.unlink_quietly(fd, MANIFEST_NAME)
        safefs.unlink_quietly(fd, SIGNATURE_NAME)
    safefs.remove_empty_dirs(export.directory, roots)
