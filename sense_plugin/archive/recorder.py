"""Record a live source into archive segments by stream copy (plain sync PyAV, one thread each).

A :class:`Recorder` opens its device's ``source`` (rtsp://, http://, a file played at real
time, anything FFmpeg opens), copies video (and audio) packets into segments of about
``segment_s`` cut at video keyframes, and hands each closed segment to ``on_segment``. When the
source fails or ends it reconnects with exponential backoff; :attr:`Recorder.status` says
honestly what it is doing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import av

from sense_plugin.archive.session import LATE_AUDIO_US, Session, describe_error
from sense_plugin.errors import MediaError
from sense_plugin.timestamps import US_PER_S, now_us

__all__ = ["BACKOFF_MAX_S", "LATE_AUDIO_US", "Recorder", "describe_error", "is_file_source",
           "with_open_range", "with_open_span"]

log = logging.getLogger(__name__)

STATUS_CONNECTING = "connecting"
STATUS_RECORDING = "recording"
STATUS_STOPPED = "stopped"
#: A session that delivered packets this long resets the backoff to its first step.
HEALTHY_SESSION_US = 10 * US_PER_S
#: The longest wait between reconnection attempts: an outage costs at most this much more.
BACKOFF_MAX_S = 4.0


def with_open_span(intervals: list[tuple[int, int]], span: tuple[int, int] | None,
                   start_us: int, end_us: int,
                   tolerance_us: int) -> list[tuple[int, int]]:
    """Recorded ``intervals`` (clipped to the range, in order) plus the segment being written.

    The open segment counts as recorded up to its last written frame (SPEC §12).
    """
    if span is None or span[1] <= start_us or span[0] >= end_us:
        return intervals
    first, last = max(span[0], start_us), min(span[1], end_us)
    result = list(intervals)
    if result and first <= result[-1][1] + tolerance_us:
        result[-1] = (min(result[-1][0], first), max(result[-1][1], last))
    else:
        result.append((first, last))
    return result


def with_open_range(found: tuple[int, int] | None,
                    span: tuple[int, int] | None) -> tuple[int, int] | None:
    """The recorded range extended by the segment being written."""
    if span is None:
        return found
    if found is None:
        return span
    return min(found[0], span[0]), max(found[1], span[1])


def is_file_source(source: str) -> bool:
    """Local files are read as fast as the disk allows, so they must be paced at real time."""
    return "://" not in source or source.startswith("file:")


class Recorder:
    """Continuous recording of one source; :meth:`run` blocks until :meth:`stop`."""

    def __init__(self, source: str, directory: Path, *, segment_s: float,
                 on_segment: Callable[[Path], None], name: str = "",
                 open_timeout_s: float = 5.0, read_timeout_s: float = 5.0,
                 backoff_first_s: float = 1.0, backoff_max_s: float = BACKOFF_MAX_S) -> None:
        self.source = source
        self.directory = directory
        self.segment_us = int(segment_s * US_PER_S)
        self.on_segment = on_segment
        self.name = name or source
        self.timeouts = (open_timeout_s, read_timeout_s)
        self.backoff = (backoff_first_s, backoff_max_s)
        self.status = STATUS_CONNECTING
        self.segments_written = 0
        #: Archive time of the first and past the last written frame of the open segment
        #: (None while none is open): the part of the recording not indexed yet.
        self.open_span: tuple[int, int] | None = None
        self._warned: set[str] = set()
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask :meth:`run` to return: within a packet, or a read timeout on a stalled source."""
        self._stop.set()

    def wait(self, seconds: float) -> bool:
        """Sleep unless stopped; True when stopped."""
        return self._stop.wait(seconds)

    def run(self) -> None:
        """Record, reconnecting with backoff, until stopped. Never raises."""
        delay_s = self.backoff[0]
        while not self._stop.is_set():
            self.status = STATUS_CONNECTING
            started_us = now_us()
            reason = self._session_reason()
            if self._stop.is_set():
                break
            if now_us() - started_us >= HEALTHY_SESSION_US:
                delay_s = self.backoff[0]
            self.status = f"error: {reason}"
            log.warning("%s: source failed (%s); reconnecting in %.1f s", self.name, reason,
                        delay_s)
            if self._stop.wait(delay_s):
                break
            delay_s = min(delay_s * 2, self.backoff[1])
        self.status = STATUS_STOPPED

    def _session_reason(self) -> str:
        try:
            self._session()
        except (av.FFmpegError, OSError, MediaError) as exc:
            return describe_error(exc)
        except Exception as exc:  # a bug must not end recording for good
            log.exception("%s: unexpected recorder failure", self.name)
            return f"internal error ({type(exc).__name__})"
        return "source ended"

    def _session(self) -> None:
        options = {"rtsp_transport": "tcp"} if self.source.startswith("rtsp") else {}
        with av.open(self.source, options=options, timeout=self.timeouts) as container:
            if not container.streams.video:
                raise MediaError("source has no video stream")
            video = container.streams.video[0]
            audio = list(container.streams.audio)
            session = Session(self, video, audio, paced=is_file_source(self.source))
            try:
                for packet in container.demux(video, *audio):
                    if self._stop.is_set():
                        break
                    session.feed(packet)
            finally:
                session.finish()

    def warn_once(self, key: str, message: str, *args: object,
                  level: int = logging.WARNING) -> None:
        """Log (a WARNING by default) the first time ``key`` comes up for this recorder."""
        if key not in self._warned:
            self._warned.add(key)
            log.log(level, "%s: " + message, self.name, *args)

    def commit(self, path: Path) -> None:
        """Hand a closed segment over (the callback indexes it); failures are logged."""
        self.segments_written += 1
        try:
            self.on_segment(path)
        except Exception:
            log.exception("%s: indexing the new segment %s failed", self.name, path.name)
