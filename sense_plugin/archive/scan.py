"""Bring the index in line with the device directories: rebuild, reconcile, recover partials.

A missing index is rebuilt by this same reconcile against an empty table. File names are read
with the device's ``archive_pattern`` (:mod:`naming`); sub-folders are walked as deep as the
pattern goes. Skipped files (a name that does not match, empty, truncated, random bytes, no
video) are logged once at WARNING and remembered with their size, mtime and reason, so that
they are not probed again until they change and ``archive-check`` can list them. A segment
whose whole span is already covered by indexed segments of the device (a copy, a
re-recording) is not served twice. A file still being written by another program is left
alone until it is complete: unchanged for ``settle_s``, or a later segment has appeared.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from sense_plugin.archive import dst
from sense_plugin.archive.index import ArchiveIndex
from sense_plugin.archive.listing import Listed, list_files, stat_files
from sense_plugin.archive.probe import SegmentInfo, probe_segment
from sense_plugin.archive.segment import STATE_BAD, STATE_OVERLAP, STATE_UNNAMED, Segment
from sense_plugin.archive.writer import final_name_of_partial, recover_partial
from sense_plugin.errors import MediaError
from sense_plugin.naming import (
    DEFAULT_PATTERN,
    NamePattern,
    NameTime,
    compiled,
)

log = logging.getLogger(__name__)

#: Someone else's temporary file (a demo writer) older than this is a crash leftover.
STALE_TEMP_S = 60.0
#: The newest file of a device that cannot be read yet is retried (not marked bad) while it
#: changed less than this long ago: its writer may not have flushed its index yet.
YOUNG_S = 60.0
HOUR_US = 3600 * 1_000_000


@dataclass
class ScanReport:
    """What one reconcile changed; ``settling``: files left for a later pass (no change)."""

    added: int = 0
    removed: int = 0
    bad: int = 0
    overlapping: int = 0
    unnamed: int = 0
    recovered: int = 0
    discarded: int = 0
    settling: list[Path] = field(default_factory=list, repr=False)

    def __iadd__(self, other: ScanReport) -> ScanReport:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    @property
    def pending(self) -> int:
        """How many files are still being written (or not readable yet)."""
        return len(self.settling)

    @property
    def changed(self) -> bool:
        return any(getattr(self, name) for name in self.__dataclass_fields__
                   if name != "settling")


@dataclass(frozen=True)
class _Candidate:
    text: str  # the path as listed: a Path is built only for files that are looked at
    relpath: str
    size_bytes: int
    mtime_ns: int

    @property
    def path(self) -> Path:
        return Path(self.text)


def reconcile_device(index: ArchiveIndex, device_id: int, directory: Path, *,
                     recover: bool = False, settle_s: float = 0.0,
                     pattern: NamePattern | None = None,
                     paths: Collection[Path] | None = None,
                     stat_known: bool = True,
                     stop: threading.Event | None = None) -> ScanReport:
    """Reconcile one device directory with the index.

    ``recover`` handles the temporary files of a crashed recorder or demo writer (only at
    start, while no recorder runs). ``settle_s``: a file modified that recently is taken only
    when a later segment of the device exists (it may still be being written otherwise).
    ``pattern`` defaults to today's naming in UTC. ``paths`` limits the pass to these files
    (change events, files settling) instead of listing the whole directory. Without
    ``stat_known`` a file the index knows is not stat'ed again (a listing then costs one
    ``scandir``, not a ``stat`` per file): for backstop passes while change events report
    the files that change. ``stop`` ends the pass early (at the next file to probe).
    """
    pattern = pattern or compiled(DEFAULT_PATTERN)
    report = ScanReport()
    if recover:
        _handle_partials(directory, report)
    if paths is None:
        known = index.file_stats(device_id)
        on_disk = list_files(directory, pattern.depth, None if stat_known else known)
    else:
        on_disk = stat_files(directory, pattern.depth, paths)
        known = index.file_stats(device_id, paths)
    for text in known.keys() - on_disk.keys():
        index.remove(Path(text))
        report.removed += 1
        log.info("segment %s is gone; removed from the index", text)
    fresh = [_Candidate(text, *listed) for text, listed in on_disk.items()
             if known.get(text) != listed[1:]]
    named = {c.text: pattern.parse(c.relpath) for c in fresh}
    complete, latest_us = _complete(fresh, named, on_disk, known, pattern, settle_s)
    taken = {c.text for c in complete}
    report.settling = [c.path for c in fresh if c.text not in taken]
    infos = _probe_all(index, device_id, complete, named, latest_us, pattern, report,
                       may_wait=settle_s > 0, stop=stop)
    infos = _settle_repeated_hours(index, device_id, infos)
    # Longest first among equal starts, so a segment contained in another is the one skipped.
    infos.sort(key=lambda item: (item[1].start_us, -item[1].end_us, item[0].text))
    for candidate, info in infos:
        _add(index, device_id, candidate, info, report)
    return report


def _probe_all(index: ArchiveIndex, device_id: int, complete: list[_Candidate],
               named: dict[str, NameTime | None], latest_us: int | None,
               pattern: NamePattern, report: ScanReport, *,
               may_wait: bool, stop: threading.Event | None = None
               ) -> list[tuple[_Candidate, SegmentInfo]]:
    young_ns = time.time_ns() - int(YOUNG_S * 1e9)
    infos: list[tuple[_Candidate, SegmentInfo]] = []
    for candidate in complete:
        if stop is not None and stop.is_set():
            break  # the rest is looked at by the next pass
        index.remove(candidate.path)  # a changed file is probed again from scratch
        name = named[candidate.text]
        # The newest file, changed lately: a writer may just be slow to flush (an MP4 is
        # unreadable until its end is written), so a failed probe waits for the next pass.
        newest = name is not None and (latest_us is None or name.start_us >= latest_us)
        info = _probe(index, device_id, candidate, name, pattern, report,
                      wait=may_wait and newest and candidate.mtime_ns > young_ns)
        if info is not None:
            infos.append((candidate, info))
    return infos


def _settle_repeated_hours(index: ArchiveIndex, device_id: int,
                           infos: list[tuple[_Candidate, SegmentInfo]]
                           ) -> list[tuple[_Candidate, SegmentInfo]]:
    """Names in a repeated DST hour that nothing in the file settled: by continuity."""
    pending = [dst.Unsettled(c.text, i.start_us, i.alt_start_us, i.end_us - i.start_us)
               for c, i in infos if i.alt_start_us is not None]
    if not pending:
        return infos
    low = min(p.first_us for p in pending) - 2 * HOUR_US
    high = max(p.second_us + p.duration_us for p in pending) + 2 * HOUR_US
    spans = index.intervals(device_id, low, high, join_tolerance_us=0)
    spans += [(i.start_us, i.end_us) for _, i in infos if i.alt_start_us is None]
    chosen, ambiguous = dst.settle(pending, spans)
    for text in ambiguous:
        dst.warn_ambiguous(text)
    settled = []
    for candidate, info in infos:
        start_us = chosen.get(candidate.text)
        if start_us is not None:
            info = replace(info, start_us=start_us,
                           end_us=start_us + info.end_us - info.start_us)
        settled.append((candidate, info))
    return settled


def _complete(fresh: list[_Candidate], named: dict[str, NameTime | None],
              on_disk: dict[str, Listed], known: Mapping[str, object],
              pattern: NamePattern, settle_s: float) -> tuple[list[_Candidate], int | None]:
    """The fresh files that are finished (quiet for ``settle_s``, or followed by a later
    one), and the start of the device's latest named file."""
    if not fresh:
        return [], None
    deadline_ns = time.time_ns() - int(settle_s * 1e9)
    young_ns = time.time_ns() - int(YOUNG_S * 1e9)
    starts = [n.start_us for n in named.values() if n is not None]
    if any(c.mtime_ns > young_ns for c in fresh):  # only then can "latest" matter
        starts += [n.start_us for text, listed in on_disk.items()
                   if text in known and text not in named
                   if (n := pattern.parse(listed[0])) is not None]
    latest_us = max(starts, default=None)
    return [c for c in fresh if c.mtime_ns <= deadline_ns
            or (latest_us is not None and (n := named[c.text]) is not None
                and n.start_us < latest_us)], latest_us


def _probe(index: ArchiveIndex, device_id: int, candidate: _Candidate,
           named: NameTime | None, pattern: NamePattern, report: ScanReport, *,
           wait: bool = False) -> SegmentInfo | None:
    if named is None:
        reason = (f"name does not match archive_pattern '{pattern.text}' "
                  f"(archive_timezone {pattern.timezone})")
        log.warning("skipping file %s: %s", candidate.path, reason)
        index.mark(device_id, candidate.path, size_bytes=candidate.size_bytes,
                   mtime_ns=candidate.mtime_ns, state=STATE_UNNAMED, reason=reason)
        report.unnamed += 1
        return None
    try:
        return probe_segment(candidate.path, named=named, mtime_ns=candidate.mtime_ns)
    except MediaError as exc:
        if wait:
            report.settling.append(candidate.path)
            return None
        log.warning("skipping bad segment file %s: %s", candidate.path, exc)
        index.mark(device_id, candidate.path, size_bytes=candidate.size_bytes,
                   mtime_ns=candidate.mtime_ns, state=STATE_BAD, reason=str(exc))
        report.bad += 1
        return None


def _add(index: ArchiveIndex, device_id: int, candidate: _Candidate, info: SegmentInfo,
         report: ScanReport) -> None:
    covered = index.intervals(device_id, info.start_us, info.end_us, join_tolerance_us=0)
    if covered == [(info.start_us, info.end_us)]:
        reason = "its whole span is already recorded by other segments of the device"
        log.warning("skipping segment %s: %s", candidate.path, reason)
        index.mark(device_id, candidate.path, size_bytes=candidate.size_bytes,
                   mtime_ns=candidate.mtime_ns, state=STATE_OVERLAP, reason=reason)
        report.overlapping += 1
        return
    if covered:
        log.info("segment %s overlaps other segments of the device", candidate.path)
    index.add(Segment(device_id, info.start_us, info.end_us, candidate.path,
                      candidate.size_bytes), mtime_ns=candidate.mtime_ns)
    report.added += 1


def recover_partials(directory: Path) -> ScanReport:
    """Recover a crashed recorder's partial segments in ``directory`` (before it records)."""
    report = ScanReport()
    _handle_partials(directory, report)
    return report


def _handle_partials(directory: Path, report: ScanReport) -> None:
    """Recover a crashed recorder's partial segments; delete stale foreign temporary files."""
    try:
        partials = [directory / name for name in os.listdir(directory)
                    if name.startswith(".") and name.endswith(".part")]
    except (FileNotFoundError, NotADirectoryError):
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
