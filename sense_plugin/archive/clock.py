"""Map a live source's media timestamps to archive (wall-clock) time.

Archive time = media time + offset. The offset is the smallest ``arrival − pts`` seen while the
first segment is recorded (a packet can arrive late, after buffering or probing, but never
before it was captured), then frozen so that consecutive segments join exactly. If the source
falls far behind the wall clock (a slow camera clock, a stall), the offset is moved forward at
the next segment: a gap, never an overlap.

Sources whose timestamps cannot be trusted (MJPEG over HTTP carries none, so FFmpeg invents
25 fps; a camera clock that runs fast or slow) are stamped by arrival instead
(:class:`ArrivalStamper`): archive time then follows the recorder's clock and can never run
ahead of it. See docs/cameras.rst, *Timestamps*.
"""

from __future__ import annotations

from fractions import Fraction

from av.packet import Packet
from av.stream import Stream

from sense_plugin.archive.probe import BACKWARD_JUMP_US, FORWARD_JUMP_US, to_us
from sense_plugin.timestamps import US_PER_S

#: How far the mapping may drift from the wall clock before it is re-anchored.
REANCHOR_US = 10 * US_PER_S
#: How far archive time may run ahead of the wall clock before the session stamps by arrival.
AHEAD_BOUND_US = 1 * US_PER_S
#: How far a source may fall behind (beyond a stall's buffering) before it is stamped by arrival.
BEHIND_BOUND_US = REANCHOR_US
#: Formats whose timestamps are invented by the demuxer, not sent by the source.
UNTIMED_FORMATS = frozenset({"mpjpeg", "mjpeg", "jpeg_pipe", "image2pipe", "mjpeg_2000"})
US_TB = Fraction(1, US_PER_S)


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

    def drift_us(self, media_us: int, arrival_us: int) -> int:
        """How far ``arrival`` lies after the archive time of ``media_us`` (negative: the
        archive runs ahead of the wall clock)."""
        return arrival_us - self.to_archive(media_us)

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


class ArrivalStamper:
    """Rewrites a session's packets to the recorder's clock, in µs (``time_base`` 1/1e6).

    Video decode times are the arrival times (kept increasing); a video packet's
    presentation delay (pts − dts) is kept. Audio follows the latest video packet's shift,
    so its offset to the video stays what the source sent.
    """

    def __init__(self, video_index: int) -> None:
        self.video_index = video_index
        self.last_dts_us: int | None = None
        self.shift_us: int | None = None  # archive − media of the last video packet

    def stamp(self, packet: Packet[Stream], arrival_us: int) -> bool:
        """Restamp ``packet`` in place; False when it cannot be placed yet (audio first)."""
        tb = packet.time_base
        dts = packet.dts if packet.dts is not None else packet.pts
        media_us = to_us(dts, tb) if dts is not None and tb is not None else None
        if packet.stream.index == self.video_index:
            delay_us = 0
            if packet.pts is not None and packet.dts is not None and tb is not None:
                delay_us = max(0, to_us(packet.pts - packet.dts, tb))
            dts_us = arrival_us
            if self.last_dts_us is not None:
                dts_us = max(dts_us, self.last_dts_us + 1_000)
            self.last_dts_us = dts_us
            if media_us is not None:
                self.shift_us = dts_us - media_us
            packet.time_base, packet.dts, packet.pts = US_TB, dts_us, dts_us + delay_us
            return True
        if self.shift_us is None or media_us is None or tb is None:
            return False
        pts_us = to_us(packet.pts, tb) if packet.pts is not None else media_us
        packet.time_base = US_TB
        packet.dts, packet.pts = media_us + self.shift_us, pts_us + self.shift_us
        return True
