"""What became of one run of a device job: the one record a run hands to the job book.

A run (``export/jobrun.py``) ends with exactly one of these, and
:meth:`~sense_plugin.export.book.JobBook.record` turns it into the job's next status
(``docs/scheduling.rst``, "One object per running job").
"""

from __future__ import annotations

from dataclasses import dataclass

from sense_plugin.filemodel import FileInfo


@dataclass(frozen=True)
class Completed:
    """COMPLETED with its file (or its parts, when ``split``)."""

    files: tuple[FileInfo, ...]
    #: A stop ended its range here (µs); None when it ran to its end.
    stopped_us: int | None
    split: bool
    bandwidth_kbps: int
    note: str = ""


@dataclass(frozen=True)
class JobFailed:
    """FAILED with a result code and a description naming the problem."""

    code: int
    description: str


@dataclass(frozen=True)
class Removed:
    """Cancelled by ``action=remove``, or stopped before anything was written."""


@dataclass(frozen=True)
class Interrupted:
    """Stopped by the shutdown: it runs again from the start next time."""


Outcome = Completed | JobFailed | Removed | Interrupted
