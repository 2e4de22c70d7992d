"""Archive retention: delete a device's oldest segments beyond its age and size limits.

Pinned ranges (held by running exports) are never touched. A pinned segment that is past the
age limit is skipped and the older-than-limit ones after it still go; the size limit instead
stops at a pinned segment rather than deleting newer footage around it (the device may exceed
its byte budget until the export unpins).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from itertools import count

from sense_plugin.archive.index import ArchiveIndex, Segment
from sense_plugin.timestamps import US_PER_S

log = logging.getLogger(__name__)

_BATCH = 500


@dataclass
class PinRegistry:
    """Archive ranges that retention must keep; thread-safe."""

    _pins: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    _tokens: count[int] = field(default_factory=lambda: count(1))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def pin(self, device_id: int, start_us: int, end_us: int) -> int:
        """Keep every segment of the device overlapping ``[start_us, end_us)``; returns a token."""
        with self.lock:
            token = next(self._tokens)
            self._pins[token] = (device_id, start_us, end_us)
            return token

    def unpin(self, token: int) -> None:
        """Release a pin (unknown tokens are ignored)."""
        with self.lock:
            self._pins.pop(token, None)

    def is_pinned(self, segment: Segment) -> bool:
        """Caller holds :attr:`lock`."""
        return any(device == segment.device_id and start < segment.end_us
                   and segment.start_us < end
                   for device, start, end in self._pins.values())


def apply_retention(index: ArchiveIndex, pins: PinRegistry, device_id: int, *,
                    max_age_days: float, max_bytes: int, now_us: int) -> int:
    """Delete the device's segments beyond the limits (``max_bytes`` 0 = unlimited).

    Returns the number of segments deleted. Each deletion re-checks the pins under the pin
    lock, so an export that pins and then queries the index never loses a segment.
    """
    cutoff_us = now_us - int(max_age_days * 86_400 * US_PER_S) if max_age_days > 0 else None
    excess = index.device_bytes(device_id) - max_bytes if max_bytes > 0 else 0
    deleted = 0
    after: tuple[int, str] | None = None
    while cutoff_us is not None or excess > 0:
        batch = index.oldest(device_id, _BATCH, after)
        if not batch:
            break
        for segment in batch:
            expired = cutoff_us is not None and segment.end_us <= cutoff_us
            if not expired and excess <= 0:
                return deleted
            outcome = _delete_unless_pinned(index, pins, segment)
            if outcome is None and not expired:
                return deleted  # the size limit waits for the pinned segment
            if outcome:
                deleted += 1
                excess -= segment.size_bytes
        after = (batch[-1].start_us, str(batch[-1].path))
    return deleted


def _delete_unless_pinned(index: ArchiveIndex, pins: PinRegistry,
                          segment: Segment) -> bool | None:
    """True deleted, False could not delete, None pinned."""
    with pins.lock:
        if pins.is_pinned(segment):
            return None
        try:
            segment.path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("retention cannot delete %s: %s", segment.path, exc.strerror)
            return False
        index.remove(segment.path)
    log.info("retention deleted %s", segment.path.name)
    return True
