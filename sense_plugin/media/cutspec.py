"""Request, result and cancellation types of a stream-copy cut (see ``remux.cut``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sense_plugin import timestamps
from sense_plugin.filemodel import FileInfo, Gap

__all__ = ["GAP_TOLERANCE_US", "SEEK_MARGIN_US", "CutCancelled", "CutRequest", "CutResult", "Gap",
           "PartFile", "SourceRange", "SourceSegment", "file_metadata", "gaps_from"]

#: Seek this far before the start so the keyframe at or before it is read (cut and render).
SEEK_MARGIN_US = 5_000_000
#: A join is a gap when more than this is missing (one tolerance everywhere).
GAP_TOLERANCE_US = timestamps.GAP_TOLERANCE_US


@dataclass(frozen=True)
class SourceSegment:
    """One archive file: archive time of its first video frame and of its end."""

    path: str
    start_us: int
    end_us: int


@dataclass(frozen=True)
class SourceRange:
    """What an export job takes from one device's archive: ``[start_us, end_us)`` and the
    segments that hold it (docs/exports.rst, "Worker records").

    The one record of the range from the server's job to the worker's cut or render: a new
    fact about the range is added here once.
    """

    segments: tuple[SourceSegment, ...]
    start_us: int
    end_us: int


@dataclass(frozen=True)
class CutRequest:
    """Cut ``source`` into ``out_path`` as ``fmt`` (mp4|mkv|ts)."""

    source: SourceRange
    out_path: str
    fmt: str = "mp4"
    #: Metadata of the output file (docs/exports.rst): ``title`` = device name, ``comment`` =
    #: export.
    title: str = ""
    comment: str = ""
    #: False: video only (``<audio>false</audio>``).
    audio: bool = True
    #: ``<timestamps>subtitle</timestamps>``: an archive-time text track (mp4/mkv).
    subtitles: bool = False


@dataclass(frozen=True)
class CutResult:
    """What was written: archive times of the first and last frame, counts, gaps, file facts."""

    first_frame_us: int
    last_frame_us: int
    frame_count: int
    audio_packets: int
    gaps: tuple[Gap, ...]
    size_bytes: int
    sha256: str
    #: st_dev / st_ino of the descriptor that was written and hashed (identity check).
    file_dev: int = 0
    file_ino: int = 0
    #: Where a cut asked to finish early ended its range (archive µs); None: it ran to the end.
    stopped_us: int | None = None


@dataclass(frozen=True)
class PartFile:
    """One file of a cut that wrote several (size-split parts, runs of equal parameters):
    where it is and what it holds (docs/exports.rst, "Worker records").

    ``path`` is a temporary name until every file of the cut is written, then the final one.
    """

    path: str
    size_bytes: int
    sha256: str
    #: st_dev / st_ino of the descriptor that was written and hashed (identity check).
    file_dev: int
    file_ino: int
    first_frame_us: int
    last_frame_us: int
    frame_count: int
    #: GOPs it holds: a single GOP larger than the limit is written whole (``oversize``).
    gops: int = 0
    gaps: tuple[Gap, ...] = ()
    oversize: bool = False

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def info(self) -> FileInfo:
        """The finished file as the status, the store and the manifest record it."""
        return FileInfo(name=self.name, size_bytes=self.size_bytes, sha256=self.sha256,
                        first_frame_us=self.first_frame_us, last_frame_us=self.last_frame_us,
                        frame_count=self.frame_count, gaps=self.gaps, oversize=self.oversize)


def file_metadata(first_us: int, title: str, comment: str) -> dict[str, str]:
    """The container metadata of an output file (docs/exports.rst): ``creation_time`` of its
    first frame, ``title`` (the device name) and ``comment`` (the export) where set."""
    metadata = {"creation_time": timestamps.creation_time_text(first_us)}
    metadata.update((key, value) for key, value in (("title", title), ("comment", comment))
                    if value)
    return metadata


def gaps_from(gaps: tuple[Gap, ...], first_us: int, next_us: int | None) -> tuple[Gap, ...]:
    """The gaps of a cut that belong to its file starting at ``first_us`` (a gap belongs to
    the file it starts in; ``next_us``: where the next file starts, None for the last)."""
    return tuple(g for g in gaps if first_us <= g.start_us and (next_us is None
                                                                 or g.start_us < next_us))


class CutCancelled(Exception):
    """``should_stop`` returned true; the temporary file has been deleted."""
