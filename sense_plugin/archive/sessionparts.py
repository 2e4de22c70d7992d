"""The parts of a recording session that stand alone: what it needs of its recorder, the
segment being written, the video watchdog, and short error texts for the status line."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import av
from av.audio.codeccontext import AudioCodecContext
from av.stream import Stream

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
    min_pts_us: int  # earliest video pts: names the segment
    end_us: int  # media time past the last written video frame
    last_dts: dict[int, int] = field(default_factory=dict)


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


def audio_codec(stream: Stream) -> AudioCodecContext:
    """The audio decoder of ``stream``."""
    codec = stream.codec_context
    assert isinstance(codec, AudioCodecContext)
    return codec
