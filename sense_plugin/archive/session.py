"""One connection of a :class:`~sense_plugin.archive.recorder.Recorder`: pacing, clock, cutting
segments at keyframes, audio plans (copy, AAC, drop) and writing.

A segment stays open :data:`LATE_AUDIO_US` after the next one started, for audio that arrives
after the next keyframe but belongs before it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import av
from av.audio.codeccontext import AudioCodecContext
from av.packet import Packet
from av.stream import Stream

from sense_plugin.archive.clock import SourceClock, is_discontinuity
from sense_plugin.archive.probe import to_us
from sense_plugin.archive.writer import SegmentWriter, choose_format, plan_audio
from sense_plugin.media.audio import AacTranscoder
from sense_plugin.timestamps import US_PER_S, now_us


class SessionOwner(Protocol):
    """What a session uses of its recorder (:class:`~sense_plugin.archive.recorder.Recorder`)."""

    name: str
    directory: Path
    segment_us: int
    status: str
    open_span: tuple[int, int] | None

    def wait(self, seconds: float) -> bool: ...

    def warn_once(self, key: str, message: str, *args: object, level: int = ...) -> None: ...

    def commit(self, path: Path) -> None: ...

log = logging.getLogger("sense_plugin.archive.recorder")

#: A segment stays open this long after the next one started, for audio that arrives late.
LATE_AUDIO_US = 500_000


def describe_error(exc: BaseException) -> str:
    """A short reason for the status line (no traceback, no long paths)."""
    if isinstance(exc, av.FFmpegError):
        return exc.strerror or type(exc).__name__
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc) or type(exc).__name__



@dataclass
class _Open:
    """One segment being written and the rebasing of its packets."""

    writer: SegmentWriter
    base_us: int  # media time of the first video dts: 0 in the file
    #: pts of its keyframe, its first shown frame: names the segment. Leading pictures stored
    #: after it but shown before it (HEVC RASL) belong to the time of the segment before.
    min_pts_us: int
    end_us: int  # media time past the last written video frame
    last_dts: dict[int, int] = field(default_factory=dict)


class Session:
    """One connection's worth of recording: pacing, clock, cutting, writing."""

    def __init__(self, owner: SessionOwner, video: Stream, audio: Sequence[Stream], *,
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
