"""The export job model: statuses, per-device jobs, exports, and how statuses combine."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from sense_plugin.filemodel import FileInfo
from sense_plugin.media.exportoptions import ExportOptions


class Status(StrEnum):
    PENDING = "PENDING"
    SYNCING = "SYNCING"
    COMPLETED = "COMPLETED"
    REMOVED = "REMOVED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"


TERMINAL = frozenset({Status.COMPLETED, Status.REMOVED, Status.FAILED, Status.EXPIRED})


@dataclass(frozen=True)
class DeviceRange:
    """One requested device and its time range."""

    server_id: int
    device_id: int
    start_us: int
    end_us: int
    #: The device's name when it is another server's (a site); else the configured one.
    name: str = ""


@dataclass(frozen=True)
class ExportRequest:
    """A validated exportVideo request (paths still as given by the client)."""

    devices: tuple[DeviceRange, ...]
    path: str = ""
    bandwidth_kbps: int = 0
    fmt: str = "mp4"
    name: str = ""
    options: ExportOptions = ExportOptions()


@dataclass
class Job:
    """The per-device job of an export (mutable: the engine updates it as it runs)."""

    export_id: int
    index: int
    server_id: int
    device_id: int
    device_name: str
    start_us: int
    end_us: int
    status: Status = Status.PENDING
    progress: int = 0
    bytes_written: int = 0
    bandwidth_kbps: int = 0
    errorcode: int = 0
    description: str = ""
    started_us: int | None = None
    finished_us: int | None = None
    file: FileInfo | None = None
    #: Every file of a job split by ``maxfilesize`` (``file`` is the first); () = one file.
    parts: tuple[FileInfo, ...] = ()
    #: Finished early by ``action=stop`` (or keepalive, max_live_s): its file ends there.
    stopped: bool = False

    @property
    def files(self) -> tuple[FileInfo, ...]:
        """The job's output files: its parts, else its one file, else none."""
        if self.parts:
            return self.parts
        return () if self.file is None else (self.file,)

    @property
    def key(self) -> tuple[int, int]:
        return (self.export_id, self.index)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass
class Export:
    """An export: who asked, where its files go, and its device jobs."""

    export_id: int
    owner: str
    created_us: int
    path: str
    out_base: str
    fmt: str
    name: str
    bandwidth_limit_kbps: int
    jobs: list[Job] = field(default_factory=list)
    retried_from: int | None = None
    finished_us: int | None = None
    expires_us: int | None = None
    options: ExportOptions = ExportOptions()
    #: ``action=stop`` (or keepalive) is under way (not stored: a restart runs it again).
    stopping: bool = False
    #: Under an evidence hold (kept in the job store's holds, set when read: export/holds.py).
    held: bool = False

    @property
    def directory(self) -> Path:
        """``<export root>/<path>/<exportid>``: where this export's files are written."""
        return Path(self.out_base) / str(self.export_id)

    @property
    def status(self) -> Status:
        """Combined device statuses; still SYNCING until the engine has finalised the export
        (finish time stamped, manifest written), so COMPLETED always means "manifest ready"."""
        status = combine_statuses([job.status for job in self.jobs])
        if status in (Status.COMPLETED, Status.FAILED) and self.finished_us is None:
            return Status.SYNCING
        return status

    @property
    def progress(self) -> int:
        """Overall progress: the mean of the device jobs' progress."""
        return sum(j.progress for j in self.jobs) // len(self.jobs) if self.jobs else 0

    @property
    def bandwidth_kbps(self) -> int:
        """Measured write speed: the sum over running jobs, else the mean of finished ones."""
        running = [j.bandwidth_kbps for j in self.jobs if j.status is Status.SYNCING]
        if running:
            return sum(running)
        done = [j.bandwidth_kbps for j in self.jobs if j.file is not None]
        return sum(done) // len(done) if done else 0

    def request(self) -> ExportRequest:
        """The parameters this export was created with (for retry)."""
        return ExportRequest(
            devices=tuple(DeviceRange(j.server_id, j.device_id, j.start_us, j.end_us)
                          for j in self.jobs),
            path=self.path, bandwidth_kbps=self.bandwidth_limit_kbps, fmt=self.fmt, name=self.name,
            options=self.options,
        )


def combine_statuses(statuses: list[Status]) -> Status:
    """An export's status from its devices' (docs/protocol.rst).

    SYNCING while any device runs or some are done and others wait; PENDING while none has
    started; once all are terminal: REMOVED if all were removed, EXPIRED if retention took the
    files, FAILED if any device failed, else COMPLETED.
    """
    if not statuses:
        return Status.PENDING
    present = set(statuses)
    if Status.SYNCING in present:
        return Status.SYNCING
    if Status.PENDING in present:
        return Status.PENDING if present == {Status.PENDING} else Status.SYNCING
    if present == {Status.REMOVED}:
        return Status.REMOVED
    if Status.FAILED in present:
        return Status.FAILED
    if Status.EXPIRED in present:
        return Status.EXPIRED
    return Status.COMPLETED
