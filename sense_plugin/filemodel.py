"""What an export produces, shared from the worker to the manifest: output formats, files, gaps."""

from __future__ import annotations

from dataclasses import dataclass

FORMATS = {"mp4": ".mp4", "mkv": ".mkv", "ts": ".ts", "jpg": ".jpg", "png": ".png",
           "pdf": ".pdf"}


#: The reason of a hole the cut found between recorded frames (docs/evidence.rst, "Gaps").
NO_RECORDING = "no recording"


@dataclass(frozen=True)
class Gap:
    """A hole in a file's recording, ``[start_us, end_us)``, and why, where that is known."""

    start_us: int
    end_us: int
    reason: str = ""


@dataclass(frozen=True)
class FileInfo:
    """One finished output file, as recorded in the store and the manifest."""

    name: str
    size_bytes: int
    sha256: str
    first_frame_us: int
    last_frame_us: int
    frame_count: int
    gaps: tuple[Gap, ...] = ()
    #: A part holding a single GOP larger than ``maxfilesize`` (the only part over it).
    oversize: bool = False
