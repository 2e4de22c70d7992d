"""Map a live source's media timestamps to archive (wall-clock) time.

Archive time = media time + offset. The offset is the smallest ``arrival − pts`` seen while the
first segment is recorded (a packet can arrive late, after buffering or probing, but never
before it was captured), then frozen so that consecutive segments join exactly. If the source
falls far behind the wall clock (a slow camera clock, a stall), the offset is moved forward at
the next segment: a gap, never an overlap.
"""

from __future__ import annotations

from sense_plugin.archive.probe import BACKWARD_JUMP_US, FORWARD_JUMP_US
from sense_plugin.timestamps import US_PER_S

#: How far the mapping may drift from the wall clock before it is re-anchored.
REANCHOR_US = 10 * US_PER_S


def is_discontinuity(previous_us: int, current_us: int) -> bool:
    """A jump in decode timestamps that no reordering or jitter explains."""
    return not previous_us - BACKWARD_JUMP_US <= current_us <= previous_us + FORWARD_JUMP_US


class SourceClock:
    """Offset between a source's media time and archive time, in microseconds."""

    def __init__(self) -> None:
        self.offset_us: int | None = None
        self.frozen = False
        self._drift_us = 0

    def observe(self, media_us: int, arrival_us: int) -> None:
        """Account for a packet of media time ``media_us`` received at ``arrival_us``."""
        candidate = arrival_us - media_us
        if self.offset_us is None:
            self.offset_us = candidate
        elif not self.frozen:
            self.offset_us = min(self.offset_us, candidate)
        else:
            self._drift_us = candidate - self.offset_us

    def to_archive(self, media_us: int) -> int:
        """Archive time of media time ``media_us`` (the first observation anchors it)."""
        return media_us + (self.offset_us or 0)

    def freeze(self) -> None:
        """Stop calibrating: from now on consecutive segments join without gaps or overlaps."""
        self.frozen = True

    def reanchor_if_drifted(self) -> bool:
        """At a segment boundary: move the offset forward if the source lags the wall clock.

        Returns True when the offset changed (a gap appears in the archive).
        """
        if self.offset_us is None or self._drift_us <= REANCHOR_US:
            return False
        self.offset_us += self._drift_us
        self._drift_us = 0
        return True
