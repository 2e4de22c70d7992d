"""Bring the index in line with the device directories: rebuild, reconcile, recover partials.

A missing index is rebuilt by this same reconcile against an empty table. Bad files (empty,
truncated, random bytes, no video) are logged once and remembered with their size and mtime so
that they are not probed again until they change. A segment whose whole span is already
covered by indexed segments of the device (a copy, a re-recording) is not served twice.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from sense_plugin.archive.demo import SEGMENT_EXTENSIONS
from sense_plugin.archive.index import STATE_BAD, STATE_OVERLAP, ArchiveIndex, Segment
from sense_plugin.archive.probe import SegmentInfo, probe_segment
from sense_plugin.archive.writer import final_name_of_partial, recover_partial
from sense_plugin.errors import MediaError

log = logging.getLogger(__name__)

#: Someone else's temporary file (a demo writer) older than this is a crash leftover.
STALE_TEMP_S = 60.0


@dataclass
class ScanReport:
    """What one reconcile changed."""

    added: int = 0
    removed: int = 0
    bad: int = 0
    overlapping: int = 0
    recovered: int = 0
    discarded: int = 0

    def __iadd__(self, other: ScanReport) -> ScanReport:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    @property
    def changed(self) -> bool:
        return any(getattr(self, name) for name in self.__dataclass_fields__)


@dataclass(frozen=True)
class _Candidate:
    path: Path
    size_bytes: int
    mtime_ns: int


def reconcile_device(index: ArchiveIndex, device_id: int, directory: Path, *,
                     recover: bool = False, settle_s: float = 0.0) -> ScanReport:
    """Reconcile one device directory with the index.

    ``recover`` handles the temporary files of a crashed recorder or demo writer (only at
    start, while no recorder runs). ``settle_s`` skips files modified that recently (they may
    still be being written by someone else).
    """
    report = ScanReport()
    if recover:
        _handle_partials(directory, report)
    on_disk = _list_segments(directory)
    known = index.files(device_id)
    for path in known.keys() - on_disk.keys():
        index.remove(path)
        report.removed += 1
        log.info("segment %s is gone; removed from the index", path)
    deadline_ns = time.time_ns() - int(settle_s * 1e9)
    fresh = [c for path, c in on_disk.items()
             if (path not in known or (known[path].size_bytes, known[path].mtime_ns)
                 != (c.size_bytes, c.mtime_ns)) and c.mtime_ns <= deadline_ns]
    infos: list[tuple[_Candidate, SegmentInfo]] = []
    for candidate in fresh:
        index.remove(candidate.path)  # a changed file is probed again from scratch
        info = _probe(index, device_id, candidate, report)
        if info is not None:
            infos.append((candidate, info))
    # Longest first among equal starts, so a segment contained in another is the one skipped.
    infos.sort(key=lambda item: (item[1].start_us, -item[1].end_us, str(item[0].path)))
    for candidate, info in infos:
        _add(index, device_id, candidate, info, report)
    return report


def _list_segments(directory: Path) -> dict[Path, _Candidate]:
    found: dict[Path, _Candidate] = {}
    extensions = tuple(SEGMENT_EXTENSIONS.values())
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return found
    for entry in entries:
        if entry.name.startswith(".") or not entry.name.endswith(extensions):
            continue
        try:
            if not entry.is_file():
                continue
            stat = entry.stat()
        except OSError:
            continue  # vanished between listing and stat
        path = Path(entry.path)
        found[path] = _Candidate(path, stat.st_size, stat.st_mtime_ns)
    return found


def _probe(index: ArchiveIndex, device_id: int, candidate: _Candidate,
           report: ScanReport) -> SegmentInfo | None:
    try:
        return probe_segment(candidate.path)
    except MediaError as exc:
        log.warning("skipping bad segment file %s: %s", candidate.path, exc)
        index.mark(device_id, candidate.path, size_bytes=candidate.size_bytes,
                   mtime_ns=candidate.mtime_ns, state=STATE_BAD)
        report.bad += 1
        return None


def _add(index: ArchiveIndex, device_id: int, candidate: _Candidate, info: SegmentInfo,
         report: ScanReport) -> None:
    covered = index.intervals(device_id, info.start_us, info.end_us, join_tolerance_us=0)
    if covered == [(info.start_us, info.end_us)]:
        log.warning("skipping segment %s: its whole span is already recorded by other "
                    "segments of the device", candidate.path)
        index.mark(device_id, candidate.path, size_bytes=candidate.size_bytes,
                   mtime_ns=candidate.mtime_ns, state=STATE_OVERLAP)
        report.overlapping += 1
        return
    if covered:
        log.info("segment %s overlaps other segments of the device", candidate.path)
    index.add(Segment(device_id, info.start_us, info.end_us, candidate.path,
                      candidate.size_bytes), mtime_ns=candidate.mtime_ns)
    report.added += 1


def _handle_partials(directory: Path, report: ScanReport) -> None:
    """Recover a crashed recorder's partial segments; delete stale foreign temporary files."""
    try:
        partials = [p for p in directory.iterdir()
                    if p.name.startswith(".") and p.name.endswith(".part")]
    except FileNotFoundError:
        return
    for part in partials:
        if final_name_of_partial(part.name) is not None:
            if recover_partial(part) is not None:
                report.recovered += 1
            else:
                report.discarded += 1
            continue
        try:
            age_s = time.time() - part.stat().st_mtime
            if age_s >= STALE_TEMP_S:
                part.unlink()
                report.discarded += 1
                log.info("deleted stale temporary file %s", part)
        except OSError as exc:
            log.warning("cannot remove temporary file %s: %s", part, exc.strerror)
