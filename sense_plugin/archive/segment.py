"""What the archive index holds: segments (a file and the span it covers) and file records."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: Row states: ``complete`` segments are served; ``bad`` and ``overlap`` files are remembered
#: (with size and mtime) only so that reconciling does not probe and log them again.
STATE_COMPLETE = "complete"
STATE_BAD = "bad"
STATE_OVERLAP = "overlap"
#: A video file whose name does not match the device's ``archive_pattern``.
STATE_UNNAMED = "unnamed"


class Segment:
    """One complete segment file and the archive time span it covers, ``[start_us, end_us)``.

    Queries return thousands of these per request, so the path stays the stored text until
    :attr:`path` is asked for (building a ``Path`` costs more than the query itself).
    """

    __slots__ = ("device_id", "start_us", "end_us", "_path", "size_bytes")

    def __init__(self, device_id: int, start_us: int, end_us: int, path: Path | str,
                 size_bytes: int) -> None:
        self.device_id = device_id
        self.start_us = start_us
        self.end_us = end_us
        self._path = path
        self.size_bytes = size_bytes

    @property
    def path(self) -> Path:
        """The segment file."""
        if isinstance(self._path, str):
            self._path = Path(self._path)
        return self._path

    @property
    def path_text(self) -> str:
        """The segment file as text (no ``Path`` built)."""
        return self._path if isinstance(self._path, str) else str(self._path)

    def _key(self) -> tuple[int, int, int, str, int]:
        return self.device_id, self.start_us, self.end_us, self.path_text, self.size_bytes

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Segment) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"Segment(device_id={self.device_id}, start_us={self.start_us}, "
                f"end_us={self.end_us}, path={self.path_text!r}, size_bytes={self.size_bytes})")


@dataclass(frozen=True)
class FileRecord:
    """What the index remembers about a file, to notice changes while the server was down."""

    path: Path
    size_bytes: int
    mtime_ns: int
    state: str
