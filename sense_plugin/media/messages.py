"""The messages between the server and an export worker process (pickled over a pipe).

server → worker: :class:`CutJob`, then while it runs :class:`SetRate`,
:class:`FeedSegments` (a live export cut while it records), :class:`Finish`, :class:`Cancel`;
:class:`Shutdown` between jobs.
worker → server: any number of :class:`Progress`, then one of :class:`Done`,
:class:`Failed` or :class:`Cancelled`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sense_plugin.filemodel import FileInfo
from sense_plugin.media.cutspec import SourceRange, SourceSegment
from sense_plugin.media.exportoptions import ExportOptions
from sense_plugin.outputpaths import TEMP_SUFFIX

__all__ = ["TEMP_SUFFIX", "Cancel", "Cancelled", "Control", "CutJob", "Done", "Failed",
           "FeedSegments", "Finish", "Progress", "Reply", "SetRate", "Shutdown", "Written"]


@dataclass(frozen=True)
class CutJob:
    """Cut (or grab, or render) one device's range into ``out_path``."""

    source: SourceRange
    fmt: str
    #: Where the planned file goes (a ``/proc/self/fd/N/name`` path through the directory
    #: descriptor the server holds); written as ``out_path + TEMP_SUFFIX`` until complete.
    out_path: str
    #: The planned file name (the final name of a one-file cut).
    name: str
    #: This job's share of the export's bandwidth cap, kbit/s (0: no cap).
    bandwidth_kbps: float
    device_id: int
    #: The device name (the output's ``title`` metadata and the file name's first part).
    title: str
    comment: str
    options: ExportOptions
    #: The export this job belongs to (a PDF snapshot report names it).
    export_id: int = 0


@dataclass(frozen=True)
class SetRate:
    kbps: float


@dataclass(frozen=True)
class FeedSegments:
    """Newly indexed segments of a live export cut while it records; ``ended``: no more."""

    segments: tuple[SourceSegment, ...]
    ended: bool


@dataclass(frozen=True)
class Finish:
    """End the file at the next packet and keep it (``action=stop``)."""


@dataclass(frozen=True)
class Cancel:
    """Stop and delete what was written (remove, shutdown)."""


@dataclass(frozen=True)
class Shutdown:
    """Leave the worker loop (sent between jobs)."""


@dataclass(frozen=True)
class Progress:
    #: Archive time covered so far, µs from the range start; bytes written so far.
    done_us: int
    size_bytes: int
    #: The worker's ``time.monotonic()`` when it sent this (CLOCK_MONOTONIC, one clock for
    #: every process of the host): the server measures the write rate on these stamps, not
    #: on when a busy event loop gets round to reading the messages.
    sent_s: float


@dataclass(frozen=True)
class Written:
    """One finished file and the identity of the descriptor that was written and hashed."""

    info: FileInfo
    file_dev: int
    file_ino: int


@dataclass(frozen=True)
class Done:
    files: tuple[Written, ...]
    #: Where a cut asked to finish early ended its range (archive µs); None: at the end.
    stopped_us: int | None = None
    #: More than one file: the parts of a ``maxfilesize`` split.
    split: bool = False
    #: Said in the job's status (``description``) when it completed: why it has several files.
    note: str = ""


@dataclass(frozen=True)
class Failed:
    code: int
    description: str
    #: An unexpected failure's traceback (logged by the server under the incident id).
    traceback: str | None = None


@dataclass(frozen=True)
class Cancelled:
    pass


Reply = Progress | Done | Failed | Cancelled
Control = CutJob | SetRate | FeedSegments | Finish | Cancel | Shutdown
