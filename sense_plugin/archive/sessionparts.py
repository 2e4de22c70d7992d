"""The parts of a recording session that stand alone: what it needs of its recorder, the
segment being written (and the rebasing of each packet into it), the video watchdog, and short
error texts for the status line."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import av
from av.audio.codeccontext import AudioCodecContext
from av.packet import Packet
from av.stream import Stream

from sense_plugin.archive.probe import to_us
from sense_plugin.archive.writer import SegmentWriter
from sense_plugin.timestamps import US_PER_S, now_us

log = logging.getLogger("sense_plugin.archive.recorder")


class SessionOwner(Protocol):
    """What a session uses of its recorder (:class:`~sense_plugin.archive.recorder.Recorder`)."""

    name: str
    directory: Path
    segment_us: int
    stall_us: int
    status: str

    open_span: tuple[int, int] | None

    @property
    def recording_status(self) -> str: ...

    def wait(self, seconds: float) -> bool: ...

    def warn_once(self, key: str, message: str, *args: object, level: int = ...) -> None: ...

    def commit(self, path: Path) -> None: ...


def describe_error(exc: BaseException) -> str:
    """A short reason for the status line (no traceback, no long paths)."""
    if isinstance(exc, av.FFmpegError):
        return exc.strerror or type(exc).__name__
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc) or type(exc).__name__



@dataclass
class OpenSegment:
    """One segment being written and the rebasing of its packets."""

    writer: SegmentWriter
    base_us: int  # media time of the first video dts: 0 in the file
    #: pts of its keyframe, its first shown frame: names the segment. Leading pictures stored
    #: after it but shown before it (HEVC RASL) belong to the time of the segment before.
    min_pts_us: int
    end_us: int  # media time past the last written video frame
    last_dts: dict[int, int] = field(default_factory=dict)

    def write(self, packet: Packet[Stream], index: int | None = None) -> None:
        """Rebase to the segment (first video dts = 0) and mux into output stream ``index``
        (the packet's own by default); dts must keep increasing."""
        assert packet.time_base is not None
        tb = packet.time_base
        base = self.base_us * tb.denominator // (tb.numerator * US_PER_S)
        pts = None if packet.pts is None else packet.pts - base
        dts = pts if packet.dts is None else packet.dts - base
        index = packet.stream.index if index is None else index
        last = self.last_dts.get(index)
        if dts is None or (last is not None and dts <= last):
            return  # jitter the muxer would refuse; a dropped packet beats a dead session
        packet.pts, packet.dts = pts, dts
        self.last_dts[index] = dts
        self.writer.write(packet, index)


class VideoWatchdog:
    """Notices video that stops while other streams (audio) keep arriving.

    The read timeout covers a source that sends nothing at all; this covers the half-failed
    camera whose connection stays busy with audio. One WARNING per stall, one INFO when the
    video is back (docs/cameras.rst, *Stalled video*).
    """

    def __init__(self, name: str, stall_us: int) -> None:
        self.name = name
        self.stall_us = stall_us
        self.video_us = now_us()  # arrival of the last video packet
        self.stalled = False

    @property
    def status(self) -> str:
        return f"stalled: no video for {self.stall_us / US_PER_S:g} s"

    def video(self, arrival_us: int) -> None:
        """A video packet arrived."""
        if self.stalled:
            self.stalled = False
            log.info("%s: video is back after %.1f s without it", self.name,
                     (arrival_us - self.video_us) / US_PER_S)
        self.video_us = arrival_us

    def stalls(self, arrival_us: int) -> bool:
        """Another stream's packet arrived: True when this starts a stall."""
        if self.stalled or arrival_us - self.video_us < self.stall_us:
            return False
        self.stalled = True
        log.warning("%s: no video for %g s while other streams still arrive", self.name,
                    self.stall_us / US_PER_S)
        return True


class HeldVideo:
    """Video packets that came without a decode time (the first keyframe of an RTSP
    connection, and the reordered packets after it that carry a pts only), held until a
    later packet places them by their arrival (docs/cameras.rst, *Timestamps*)."""

    #: At most this many are held; more are dropped.
    LIMIT = 8

    def __init__(self) -> None:
        self.items: list[tuple[Packet[Stream], int]] = []  # (packet, arrival µs)

    def __bool__(self) -> bool:
        return bool(self.items)

    def hold(self, packet: Packet[Stream], arrival_us: int) -> bool:
        """Keep ``packet``; False when full (the caller goes on without it)."""
        if len(self.items) >= self.LIMIT:
            return False
        self.items.append((packet, arrival_us))
        return True

    def drop(self) -> list[tuple[Packet[Stream], int, int]]:
        self.items = []
        return []

    def place(self, next_us: int, next_arrival_us: int, next_pts_us: int | None,
              frame_us: int) -> list[tuple[Packet[Stream], int, int]]:
        """Decode times before the packet of decode time ``next_us`` that arrived after them
        (as far before it as they arrived, at least a frame each); a packet without a pts
        (the keyframe) is shown a frame before the earliest pts that follows it."""
        shown = [to_us(p.pts, p.time_base) for p, _ in self.items
                 if p.pts is not None and p.time_base is not None]
        if next_pts_us is not None:
            shown.append(next_pts_us)
        first_pts_us = min(shown, default=next_us) - frame_us
        count = len(self.items)
        return self._stamp([(min(next_us - (next_arrival_us - arrival_us),
                                 next_us - (count - i) * frame_us), first_pts_us)
                            for i, (_, arrival_us) in enumerate(self.items)])

    def place_after(self, last_us: int, offset_us: int,
                    frame_us: int) -> list[tuple[Packet[Stream], int, int]]:
        """With nothing after them: by arrival (``offset_us`` maps media to archive time),
        each at least a frame after the one before."""
        times = []
        for _, arrival_us in self.items:
            last_us = max(arrival_us - offset_us, last_us + frame_us)
            times.append((last_us, last_us))
        return self._stamp(times)

    def _stamp(self, times: list[tuple[int, int]]) -> list[tuple[Packet[Stream], int, int]]:
        placed = []
        for (packet, arrival_us), (dts_us, pts_us) in zip(self.items, times, strict=True):
            tb = packet.time_base
            assert tb is not None
            scale = tb.numerator * US_PER_S
            if packet.pts is None:
                packet.pts = max(dts_us, pts_us) * tb.denominator // scale
            packet.dts = dts_us * tb.denominator // scale
            placed.append((packet, dts_us, arrival_us))
        self.items = []
        return placed


def audio_codec(stream: Stream) -> AudioCodecContext:
    """The audio decoder of ``stream``."""
    codec = stream.codec_context
    assert isinstance(codec, AudioCodecContext)
    return codec
