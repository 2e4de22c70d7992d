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
from dataclasses import dataclass, field
from pathlib import Path

import av
from av.audio.codeccontext import AudioCodecContext
from av.packet import Packet
from av.stream import Stream

from sense_plugin.archive.clock import SourceClock, is_discontinuity
from sense_plugin.archive.probe import to_us
from sense_plugin.archive.writer import SegmentWriter, choose_format, plan_audio
from sense_plugin.errors import MediaError
from sense_plugin.export.audio import AacTranscoder
from sense_plugin.timestamps import US_PER_S, now_us

log = logging.getLogger(__name__)

STATUS_CONNECTING = "connecting"
STATUS_RECORDING = "recording"
STATUS_STOPPED = "stopped"
#: A session that delivered packets this long resets the backoff to its first step.
HEALTHY_SESSION_US = 10 * US_PER_S
#: The longest wait between reconnection attempts: an outage costs at most this much more.
BACKOFF_MAX_S = 4.0
#: A segment stays open this long after the next one started, for audio that arrives late.
LATE_AUDIO_US = 500_000


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
            session = _Session(self, video, audio, paced=is_file_source(self.source))
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


@dataclass
class _Open:
    """One segment being written and the rebasing of its packets."""

    writer: SegmentWriter
    base_us: int  # media time of the first video dts: 0 in the file
    min_pts_us: int  # earliest video pts: names the segment
    end_us: int  # media time past the last written video frame
    last_dts: dict[int, int] = field(default_factory=dict)


class _Session:
    """One connection's worth of recording: pacing, clock, cutting, writing."""

    def __init__(self, owner: Recorder, video: Stream, audio: Sequence[Stream], *,
                 paced: bool) -> None:
        self.owner = owner
        self.video = video
        plan = plan_audio(audio)
        for codec in plan.dropped:
            owner.warn_once(f"codec:{codec}", "audio codec %s cannot be recorded; recording "
                            "the video without it", codec)
        self.templates = [video, *plan.copy]
        self.transcoders = {s.index: AacTranscoder.for_stream(s) for s in plan.transcode}
        self.decoders = {s.index: _audio_codec(s) for s in plan.transcode}
        for stream in plan.transcode:
            owner.warn_once(f"aac:{stream.codec_context.name}", "audio codec %s is recorded "
                            "as AAC (no segment format carries it)", stream.codec_context.name,
                            level=logging.INFO)
        self.fmt = choose_format(video, plan.copy)
        self.paced = paced
        self.clock = SourceClock()
        self.pace_anchor: tuple[int, int] | None = None  # (wall µs, media µs)
        self.current: _Open | None = None
        self.previous: _Open | None = None  # closed once late audio can no longer come
        self.frame_us = int(US_PER_S / (video.average_rate or 25))
        self.last_video_us: int | None = None

    def feed(self, packet: Packet[Stream]) -> None:
        ts = packet.dts if packet.dts is not None else packet.pts
        if packet.size == 0 or ts is None or packet.time_base is None:
            return
        media_us = to_us(ts, packet.time_base)
        if self.paced:
            self._pace(media_us)
        if packet.stream.index != self.video.index:
            self._audio(packet, media_us)
            return
        pts_us = to_us(packet.pts, packet.time_base) if packet.pts is not None else media_us
        if self.last_video_us is not None and is_discontinuity(self.last_video_us, media_us):
            log.warning("%s: timestamp discontinuity in the source; starting a new segment",
                        self.owner.name)
            self._close_all()
            self.clock = SourceClock()
            self.pace_anchor = None
        self.last_video_us = media_us
        self.clock.observe(pts_us, now_us())
        current = self.current
        if packet.is_keyframe and (current is None
                                   or media_us - current.base_us >= self.owner.segment_us):
            self._open_segment(media_us, pts_us)
        elif self.previous is not None and media_us - self.current_base() >= LATE_AUDIO_US:
            self._close(self.previous)
            self.previous = None
        if self.current is None:
            return  # waiting for the first keyframe
        self._video(packet, pts_us)

    def current_base(self) -> int:
        return self.current.base_us if self.current is not None else 0

    def _video(self, packet: Packet[Stream], pts_us: int) -> None:
        segment = self.current
        assert segment is not None
        segment.min_pts_us = min(segment.min_pts_us, pts_us)
        segment.end_us = max(segment.end_us, pts_us + self.frame_us)
        self._write(segment, packet)
        first = self.previous if self.previous is not None else segment
        self.owner.open_span = (self.clock.to_archive(first.min_pts_us),
                                self.clock.to_archive(segment.end_us))
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
        if self.previous is not None:
            self._close(self.previous)
        self.previous, self.current = self.current, None
        if self.clock.reanchor_if_drifted():
            log.warning("%s: source clock drifted from the wall clock; re-anchored",
                        self.owner.name)
        start_us = self.clock.to_archive(pts_us)
        try:
            writer = SegmentWriter(self.owner.directory, self.fmt, start_us, self.templates,
                                   self.transcoders)
        except ValueError as exc:  # the muxer refused an audio stream: keep the video
            codecs = ", ".join(t.codec_context.name for t in self.templates[1:])
            self.owner.warn_once(f"mux:{codecs}", "audio %s refused by the %s muxer (%s); "
                                 "recording the video without it", codecs, self.fmt, exc)
            self.templates, self.transcoders = [self.video], {}
            writer = SegmentWriter(self.owner.directory, self.fmt, start_us, self.templates)
        self.current = _Open(writer, dts_us, pts_us, pts_us)

    def _audio(self, packet: Packet[Stream], media_us: int) -> None:
        index = packet.stream.index
        transcoder = self.transcoders.get(index)
        if transcoder is None:
            target = self._segment_at(media_us)
            if target is not None and target.writer.carries(index):
                self._write(target, packet)
            return
        if self.current is None:
            return  # before the first keyframe: nothing to put it in
        try:
            encoded = transcoder.feed(packet, self.decoders[index], media_us)
        except av.FFmpegError as exc:
            del self.transcoders[index]
            self.owner.warn_once(f"decode:{index}", "audio stream %d cannot be decoded (%s); "
                                 "recording without it", index, describe_error(exc))
            return
        for pkt, at_us in encoded:  # the encoder lags: place each packet by its own time
            target = self._segment_at(at_us)
            if target is not None:
                self._write(target, pkt, index)

    def _segment_at(self, media_us: int) -> _Open | None:
        """The open segment audio at ``media_us`` belongs to: late audio goes to the previous."""
        target = self.current
        if target is not None and media_us < target.base_us:
            target = self.previous
        return None if target is None or media_us < target.base_us else target

    def _write(self, segment: _Open, packet: Packet[Stream], index: int | None = None) -> None:
        """Rebase to the segment (first video dts = 0) and mux; dts must keep increasing."""
        assert packet.time_base is not None
        tb = packet.time_base
        base = segment.base_us * tb.denominator // (tb.numerator * US_PER_S)
        pts = None if packet.pts is None else packet.pts - base
        dts = pts if packet.dts is None else packet.dts - base
        index = packet.stream.index if index is None else index
        last = segment.last_dts.get(index)
        if dts is None or (last is not None and dts <= last):
            return  # jitter the muxer would refuse; a dropped packet beats a dead session
        packet.pts, packet.dts = pts, dts
        segment.last_dts[index] = dts
        segment.writer.write(packet, index)

    def _close(self, segment: _Open) -> None:
        writer = segment.writer
        try:
            path = writer.commit(self.clock.to_archive(segment.min_pts_us))
        except (av.FFmpegError, OSError) as exc:
            log.warning("%s: could not close segment %s: %s", self.owner.name,
                        writer.tmp_path.name, describe_error(exc))
            writer.abort()
            return
        self.clock.freeze()
        self.owner.commit(path)

    def _close_all(self) -> None:
        for segment in (self.previous, self.current):
            if segment is not None:
                self._close(segment)
        self.previous = self.current = None
        self.owner.open_span = None

    def finish(self) -> None:
        """Close the open segments: everything written so far is a valid recording."""
        for index, transcoder in self.transcoders.items():
            try:
                encoded = transcoder.flush()
            except av.FFmpegError:
                continue
            for pkt, at_us in encoded:
                target = self._segment_at(at_us)
                if target is not None:
                    self._write(target, pkt, index)
        self._close_all()



def _audio_codec(stream: Stream) -> AudioCodecContext:
    codec = stream.codec_context
    assert isinstance(codec, AudioCodecContext)
    return codec
