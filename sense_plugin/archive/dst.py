"""Names in the repeated hour of an autumn DST change, when nothing inside the file says
which pass it was.

A local-time name such as ``02:30`` in Berlin on the last Sunday of October occurs twice.
The container's ``creation_time`` settles it, and so does the file's mtime when it lies near
the end of one of the two passes (a recorder writes a segment as it ends). A copied archive
(plain ``cp``, ``scp``, a USB stick) has the copy's mtimes instead: then a segment joins the
run it continues (its start meets a run's end, or its end a run's start) without overlapping
what is already recorded, and a segment that continues nothing (or both passes) is taken as
the first pass with a WARNING. Footage an hour apart
is never interleaved silently. See docs/cameras.rst, *Daylight saving time*.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sense_plugin.timestamps import US_PER_S

log = logging.getLogger("sense_plugin.archive.scan")

#: A file's mtime counts as its end (and settles the pass) when it lies this close to it.
MTIME_TRUST_US = 10 * 60 * US_PER_S
#: A segment continues a run whose end lies this close to its start (names in seconds, writers
#: that round, a restart at the change).
CONTINUITY_US = 2 * US_PER_S
#: When both passes of a segment continue runs, the closer join must be this much closer.
MIN_MARGIN_US = US_PER_S // 2


def pass_by_mtime(first_us: int, second_us: int, duration_us: int,
                  mtime_ns: int | None) -> int | None:
    """The start whose pass the mtime points at, or None when the mtime is not near either end."""
    if mtime_ns is None:
        return None
    end_us = mtime_ns // 1000
    best = min((first_us, second_us), key=lambda c: abs(end_us - (c + duration_us)))
    return best if abs(end_us - (best + duration_us)) <= MTIME_TRUST_US else None


@dataclass(frozen=True)
class Unsettled:
    """A segment whose name lies in a repeated hour: its two possible starts and its length."""

    key: str
    first_us: int
    second_us: int
    duration_us: int


def settle(pending: Iterable[Unsettled], spans: Iterable[tuple[int, int]]
           ) -> tuple[dict[str, int], list[str]]:
    """Choose each pending segment's start by continuity with ``spans`` (what is recorded).

    The closest join anywhere is decided first (so exact joins chain a pass through before a
    looser one is considered); a segment whose two passes join equally well (within
    :data:`MIN_MARGIN_US`) waits until one of them no longer fits. Returns the chosen starts
    by key, and the keys that nothing decided (taken as the first pass; the caller warns).
    """
    known = sorted(spans)
    left = sorted(pending, key=lambda p: (p.first_us, p.key))
    chosen: dict[str, int] = {}
    ambiguous: list[str] = []

    def take(item: Unsettled, start_us: int) -> None:
        chosen[item.key] = start_us
        known.append((start_us, start_us + item.duration_us))
        left.remove(item)

    while left:
        best: tuple[int, Unsettled, int] | None = None  # (join, item, start)
        for item in left:
            fits = sorted((join, s) for s in (item.first_us, item.second_us)
                          if (join := _join_us(s, s + item.duration_us, known)) is not None)
            if not fits or (len(fits) == 2 and fits[1][0] - fits[0][0] < MIN_MARGIN_US):
                continue
            if best is None or fits[0][0] < best[0]:
                best = (fits[0][0], item, fits[0][1])
        if best is not None:
            take(best[1], best[2])
        else:  # nothing tells: the first pass, and say so
            item = left[0]
            take(item, item.first_us)
            ambiguous.append(item.key)
    return chosen, ambiguous


def _join_us(start_us: int, end_us: int, spans: list[tuple[int, int]]) -> int | None:
    """How closely ``[start, end)`` continues a span (its start meets a span's end, or its
    end a span's start); None when it overlaps one or continues none."""
    join: int | None = None
    for span_start, span_end in spans:
        if span_start < end_us - CONTINUITY_US and start_us + CONTINUITY_US < span_end:
            return None
        for distance in (abs(start_us - span_end), abs(end_us - span_start)):
            if distance <= CONTINUITY_US and (join is None or distance < join):
                join = distance
    return join


def warn_ambiguous(name: str) -> None:
    """The one WARNING for a segment left on the first pass."""
    log.warning("%s: the name lies in the repeated hour of a DST change, and neither the file "
                "(creation_time, mtime) nor the neighbouring segments tell which pass it is; "
                "taking the first (archive-check lists it)", name)
