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
from collections.abc import Callable, Sequence
from pathlib import Path

import av
from av.packet import Packet
from av.stream import Stream

from sense_plugin.archive.clock import SourceClock, is_discontinuity
from sense_plugin.archive.probe import to_us
from sense_plugin.archive.writer import SegmentWriter, choose_format
from sense_plugin.errors import MediaError
from sense_plugin.timestamps import US_PER_S, now_us

log = logging.getLogger(__name__)

STATUS_CONNECTING = "connecting"
STATUS_RECORDING = "recording"
STATUS_STOPPED = "stopped"
#: A session that delivered packets this long resets the backoff to its first step.
HEALTHY_SESSION_US = 10 * US_PER_S


def is_file_source(source: str) -> bool:
    """Local files are read as fast as the disk allows, so they must be paced at real time."""
    return "://" not in source or source.startswith("file:")


def describe_error(exc: BaseException) -> str:
    """A short reason for the status line (no traceback, no long paths)."""
    if isinstance(exc, av.FFmpegError):
        return exc.strerror or type(exc).__name__
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc) or type(exc).__name__


class Recorder:
    """Continuous recording of one source; :meth:`run` blocks until :meth:`stop`."""

    def __init__(self, source: str, directory: Path, *, segment_s: float,
                 on_segment: Callable[[Path], None], name: str = "",
                 open_timeout_s: float = 5.0, read_timeout_s: float = 5.0,
                 backoff_first_s: float = 1.0, backoff_max_s: float = 30.0) -> None:
        self.source = source
        self.directory = directory
        self.segment_us = int(segment_s * US_PER_S)
        self.on_segment = on_segment
        self.name = name or source
        self.timeouts = (open_timeout_s, read_timeout_s)
        self.backoff = (backoff_first_s, backoff_max_s)
        self.status = STATUS_CONNECTING
        self.segments_written = 0
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
            session = _Session(self, video, audio, paced=is_file_source(self.source))
            try:
                for packet in container.demux(video, *audio):
                    if self._stop.is_set():
                        break
                    session.feed(packet)
            finally:
                session.finish()

    def commit(self, path: Path) -> None:
        """Hand a closed segment over (the callback indexes it); failures are logged."""
        self.segments_written += 1
        try:
            self.on_segment(path)
        except Exception:
            log.exception("%s: indexing the new segment %s failed", self.name, path.name)


class _Session:
    """One connection's worth of recording: pacing, clock, cutting, writing."""

    def __init__(self, owner: Recorder, video: Stream, audio: Sequence[Stream], *,
                 paced: bool) -> None:
        self.owner = owner
        self.video = video
        self.templates = [video, *audio]
        self.fmt = choose_format(video, audio)
        self.paced = paced
        self.clock = SourceClock()
        self.pace_anchor: tuple[int, int] | None = None  # (wall µs, media µs)
        self.writer: SegmentWriter | None = None
        self.base_us = 0  # media time of the segment's first video dts: becomes 0 in the file
        self.first_us = 0  # media time of the segment's first keyframe (for its length)
        self.min_pts_us = 0  # earliest video pts in the segment: names the segment
        self.last_video_us: int | None = None
        self.last_dts: dict[int, int] = {}

    def feed(self, packet: Packet[Stream]) -> None:
        ts = packet.dts if packet.dts is not None else packet.pts
        if packet.size == 0 or ts is None or packet.time_base is None:
            return
        media_us = to_us(ts, packet.time_base)
        if self.paced:
            self._pace(media_us)
        if packet.stream.index != self.video.index:
            self._write_audio(packet, media_us)
            return
        pts_us = to_us(packet.pts, packet.time_base) if packet.pts is not None else media_us
        if self.last_video_us is not None and is_discontinuity(self.last_video_us, media_us):
            log.warning("%s: timestamp discontinuity in the source; starting a new segment",
                        self.owner.name)
            self._close_segment()
            self.clock = SourceClock()
            self.pace_anchor = None
        self.last_video_us = media_us
        self.clock.observe(pts_us, now_us())
        if packet.is_keyframe and (self.writer is None
                                   or media_us - self.first_us >= self.owner.segment_us):
            self._close_segment()
            self._open_segment(media_us, pts_us)
        if self.writer is None:
            return  # waiting for the first keyframe
        self.min_pts_us = min(self.min_pts_us, pts_us)
        self._write(packet)
        if self.owner.status != "recording":
            self.owner.status = "recording"

    def _pace(self, media_us: int) -> None:
        wall_us = now_us()
        if self.pace_anchor is None:
            self.pace_anchor = (wall_us, media_us)
            return
        ahead_us = self.pace_anchor[0] + media_us - self.pace_anchor[1] - wall_us
        if ahead_us > 0:
            self.owner.wait(ahead_us / US_PER_S)

    def _open_segment(self, dts_us: int, pts_us: int) -> None:
        if self.clock.reanchor_if_drifted():
            log.warning("%s: source clock drifted from the wall clock; re-anchored",
                        self.owner.name)
        self.base_us, self.first_us, self.min_pts_us = dts_us, dts_us, pts_us
        self.last_dts = {}
        start_us = self.clock.to_archive(pts_us)
        self.writer = SegmentWriter(self.owner.directory, self.fmt, start_us, self.templates)

    def _write_audio(self, packet: Packet[Stream], media_us: int) -> None:
        if self.writer is not None and media_us >= self.base_us:
            self._write(packet)

    def _write(self, packet: Packet[Stream]) -> None:
        """Rebase to the segment (first video dts = 0) and mux; dts must keep increasing."""
        assert self.writer is not None and packet.time_base is not None
        tb = packet.time_base
        base = self.base_us * tb.denominator // (tb.numerator * US_PER_S)
        pts = None if packet.pts is None else packet.pts - base
        dts = pts if packet.dts is None else packet.dts - base
        index = packet.stream.index
        last = self.last_dts.get(index)
        if dts is None or (last is not None and dts <= last):
            return  # jitter the muxer would refuse; a dropped packet beats a dead session
        packet.pts, packet.dts = pts, dts
        self.last_dts[index] = dts
        self.writer.write(packet, index)

    def _close_segment(self) -> None:
        writer, self.writer = self.writer, None
        if writer is None:
            return
        try:
            path = writer.commit(self.clock.to_archive(self.min_pts_us))
        except (av.FFmpegError, OSError) as exc:
            log.warning("%s: could not close segment %s: %s", self.owner.name,
                        writer.tmp_path.name, describe_error(exc))
            writer.abort()
            return
        self.clock.freeze()
        self.owner.commit(path)

    def finish(self) -> None:
        """Close the open segment: everything written so far is a valid recording."""
        self._close_segment()
