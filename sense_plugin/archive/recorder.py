"""Record a live source into archive segments by stream copy (plain sync PyAV, one thread each).

A :class:`Recorder` opens its device's ``source`` (rtsp://, http://, a file played at real
time, anything FFmpeg opens), copies video (and audio) packets into segments of about
``segment_s`` cut at video keyframes, and hands each closed segment to ``on_segment``. When the
source fails or ends it reconnects with exponential backoff; :attr:`Recorder.status` says
honestly what it is doing.

RTSP is asked for over the device's transport: ``auto`` tries TCP, then UDP, then HTTP
tunnelling, and keeps the first that connects (docs/cameras.rst, *RTSP transport*).
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import av

from sense_plugin.archive.clock import UNTIMED_FORMATS
from sense_plugin.archive.session import LATE_AUDIO_US, Session
from sense_plugin.archive.sessionparts import describe_error
from sense_plugin.errors import MediaError
from sense_plugin.timestamps import US_PER_S, now_us

__all__ = ["BACKOFF_MAX_S", "LATE_AUDIO_US", "RTSP_TRANSPORTS", "Recorder", "describe_error",
           "is_file_source", "transports_for", "with_open_range", "with_open_span"]

log = logging.getLogger(__name__)

STATUS_CONNECTING = "connecting"
STATUS_RECORDING = "recording"
STATUS_STOPPED = "stopped"
#: A session that delivered packets this long resets the backoff to its first step.
HEALTHY_SESSION_US = 10 * US_PER_S
#: The longest wait between reconnection attempts: an outage costs at most this much more.
BACKOFF_MAX_S = 4.0
#: Video may stop this long while other streams flow before the device counts as stalled.
STALL_S = 10.0
#: Errors that say the camera cannot be reached at all (whatever the transport).
UNREACHABLE = frozenset({errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH})
#: What ``rtsp_transport = "auto"`` tries, in order (FFmpeg's names; ``http`` tunnels RTSP
#: and RTP through HTTP).
RTSP_TRANSPORTS = ("tcp", "udp", "http")


def transports_for(source: str, setting: str) -> tuple[str, ...]:
    """The RTSP transports to try for ``source``: none for other schemes."""
    if not source.startswith(("rtsp://", "rtsps://")):
        return ()
    return RTSP_TRANSPORTS if setting == "auto" else (setting,)


def with_open_span(intervals: list[tuple[int, int]], span: tuple[int, int] | None,
                   start_us: int, end_us: int,
                   tolerance_us: int) -> list[tuple[int, int]]:
    """Recorded ``intervals`` (clipped to the range, in order) plus the segment being written.

    The open segment counts as recorded up to its last written frame (docs/archive.rst).
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
                 backoff_first_s: float = 1.0, backoff_max_s: float = BACKOFF_MAX_S,
                 rtsp_transport: str = "auto", stall_s: float = STALL_S) -> None:
        self.source = source
        self.directory = directory
        self.segment_us = int(segment_s * US_PER_S)
        self.on_segment = on_segment
        self.name = name or source
        self.timeouts = (open_timeout_s, read_timeout_s)
        self.backoff = (backoff_first_s, backoff_max_s)
        self.stall_us = int(stall_s * US_PER_S)
        self.transports = transports_for(source, rtsp_transport)
        self.transport: str | None = None  # the RTSP transport in use (or last used)
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

    @property
    def recording_status(self) -> str:
        """The status while frames are written: names the RTSP transport in use."""
        if self.transport is None:
            return STATUS_RECORDING
        return f"{STATUS_RECORDING} (rtsp over {self.transport})"

    @property
    def is_recording(self) -> bool:
        """True while frames are being written (for ``sense_recorder_up``)."""
        return self.status.startswith(STATUS_RECORDING)

    def _open(self) -> av.container.InputContainer:
        """Open the source; over RTSP try the transports in order, the last that worked first."""
        if not self.transports:
            return av.open(self.source, timeout=self.timeouts)
        order = list(self.transports)
        if self.transport in order:
            order.remove(self.transport)
            order.insert(0, self.transport)
        for i, transport in enumerate(order):
            try:
                container = av.open(self.source, options={"rtsp_transport": transport},
                                    timeout=self.timeouts)
            except (av.FFmpegError, OSError) as exc:
                if i + 1 == len(order) or self._stop.is_set() or exc.errno in UNREACHABLE:
                    raise  # no camera there: another transport will not find one
                self.warn_once(f"transport:{transport}", "RTSP over %s failed (%s); trying %s",
                               transport, describe_error(exc), order[i + 1])
                continue
            if transport != self.transport:
                log.info("%s: RTSP over %s", self.name, transport)
            self.transport = transport
            return container
        raise AssertionError("unreachable: the last transport raises")

    def _session(self) -> None:
        with self._open() as container:
            if not container.streams.video:
                raise MediaError("source has no video stream")
            video = container.streams.video[0]
            audio = list(container.streams.audio)
            untimed = bool(set(container.format.name.split(",")) & UNTIMED_FORMATS)
            if untimed:
                self.warn_once("untimed", "%s carries no timestamps of its own: frames are "
                               "stamped by arrival", container.format.name, level=logging.INFO)
            session = Session(self, video, audio, paced=is_file_source(self.source),
                              arrival_stamped=untimed and not is_file_source(self.source))
            got_video = False
            try:
                for packet in container.demux(video, *audio):
                    if self._stop.is_set():
                        break
                    got_video = got_video or packet.stream.index == video.index
                    session.feed(packet)
            except (av.FFmpegError, OSError):
                if not got_video:
                    self._next_transport()  # e.g. UDP blocked on the way: nothing arrives
                raise
            finally:
                session.finish()

    def _next_transport(self) -> None:
        """With ``auto``, start the next connection with the transport after this one."""
        if len(self.transports) > 1 and self.transport in self.transports:
            following = self.transports[(self.transports.index(self.transport) + 1)
                                        % len(self.transports)]
            log.warning("%s: no video over %s; trying %s next", self.name, self.transport,
                        following)
            self.transport = following

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
