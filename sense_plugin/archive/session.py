"""One connection of a :class:`~sense_plugin.archive.recorder.Recorder`: pacing, clock, cutting
segments at keyframes, audio plans (copy, AAC, drop) and writing.

A segment stays open :data:`LATE_AUDIO_US` after the next one started, for audio that arrives
after the next keyframe but belongs before it. Video packets without timestamps (the first
keyframe of an RTSP connection) are placed by their arrival; a change of picture size starts a
new segment; video that stops while audio flows is reported as stalled (docs/cameras.rst).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import av
from av.packet import Packet
from av.stream import Stream

from sense_plugin.archive.clock import (
    AHEAD_BOUND_US,
    BEHIND_BOUND_US,
    ArrivalStamper,
    SourceClock,
    is_discontinuity,
)
from sense_plugin.archive.paramsets import SizeWatch
from sense_plugin.archive.probe import to_us
from sense_plugin.archive.sessionparts import (
    HeldVideo,
    OpenSegment,
    SessionOwner,
    VideoWatchdog,
    audio_codec,
    describe_error,
)
from sense_plugin.archive.writer import SegmentWriter, choose_format, plan_audio
from sense_plugin.media.audio import AacTranscoder
from sense_plugin.timestamps import US_PER_S, now_us

log = logging.getLogger("sense_plugin.archive.recorder")

#: A segment stays open this long after the next one started, for audio that arrives late.
LATE_AUDIO_US = 500_000


class Session:
    """One connection's worth of recording: pacing, clock, cutting, writing."""

    def __init__(self, owner: SessionOwner, video: Stream, audio: Sequence[Stream], *,
                 paced: bool, arrival_stamped: bool = False) -> None:
        self.owner = owner
        self.video = video
        plan = plan_audio(audio)
        for codec in plan.dropped:
            owner.warn_once(f"codec:{codec}", "audio codec %s cannot be recorded; recording "
                            "the video without it", codec)
        self.templates = [video, *plan.copy]
        self.transcoders = {s.index: AacTranscoder.for_stream(s) for s in plan.transcode}
        self.decoders = {s.index: audio_codec(s) for s in plan.transcode}
        for stream in plan.transcode:
            owner.warn_once(f"aac:{stream.codec_context.name}", "audio codec %s is recorded "
                            "as AAC (no segment format carries it)", stream.codec_context.name,
                            level=logging.INFO)
        self.fmt = choose_format(video, plan.copy)
        self.paced = paced
        self.clock = SourceClock()
        self.pace_anchor: tuple[int, int] | None = None  # (wall µs, media µs)
        self.current: OpenSegment | None = None
        self.previous: OpenSegment | None = None  # closed once late audio can no longer come
        self.frame_us = int(US_PER_S / (video.average_rate or 25))
        self.last_video_us: int | None = None
        self.stamper = ArrivalStamper(video.index) if arrival_stamped else None
        self.drift_us: int | None = None  # set: stamp by arrival from the next keyframe on
        self.held = HeldVideo()
        self.sizes = SizeWatch(video)
        self.watchdog = VideoWatchdog(owner.name, owner.stall_us)

    def feed(self, packet: Packet[Stream]) -> None:
        if packet.size == 0:
            return
        arrival_us = now_us()
        is_video = packet.stream.index == self.video.index
        if is_video:
            self.watchdog.video(arrival_us)
        else:
            self._check_stall(arrival_us)
        if self.stamper is not None and not self.stamper.stamp(packet, arrival_us):
            return
        ts = packet.dts if packet.dts is not None else packet.pts
        if ts is None or packet.time_base is None:
            if is_video:
                self.held.hold(packet, arrival_us)  # placed by the next stamped one
            return
        if is_video and self.held and packet.dts is None and self.held.hold(packet, arrival_us):
            return  # reordered (pts only) after a held one: held too
        media_us = to_us(ts, packet.time_base)
        if self.paced:
            self._pace(media_us)
        if not is_video:
            self._audio(packet, media_us)
            return
        if self.held:
            self._place_unstamped(media_us, arrival_us, to_us(packet.pts, packet.time_base)
                                  if packet.pts is not None else media_us)
        self._feed_video(packet, media_us, arrival_us)

    def _place_unstamped(self, next_us: int | None, next_arrival_us: int,
                         next_pts_us: int | None = None) -> None:
        """Place the held packets before the packet that arrived after them, or (none came)
        after the last stamped one, by arrival on the recorder's clock."""
        if next_us is not None:
            placed = self.held.place(next_us, next_arrival_us, next_pts_us, self.frame_us)
        elif self.last_video_us is not None and self.clock.offset_us is not None:
            placed = self.held.place_after(self.last_video_us, self.clock.offset_us,
                                           self.frame_us)
        else:
            placed = self.held.drop()  # nothing stamped yet: nothing to place them by
        for packet, dts_us, arrival_us in placed:
            self._feed_video(packet, dts_us, arrival_us)

    def _feed_video(self, packet: Packet[Stream], media_us: int, arrival_us: int) -> None:
        assert packet.time_base is not None
        pts_us = to_us(packet.pts, packet.time_base) if packet.pts is not None else media_us
        if self.last_video_us is not None and is_discontinuity(self.last_video_us, media_us):
            log.warning("%s: timestamp discontinuity in the source; starting a new segment",
                        self.owner.name)
            self._restart_clock()
        self.last_video_us = media_us
        self.clock.observe(pts_us, arrival_us)
        self._check_drift(pts_us, arrival_us)
        if packet.is_keyframe and self.drift_us is not None:
            self._stamp_by_arrival(packet, arrival_us)
            return
        resized = self.sizes.changed(packet) if packet.is_keyframe else None
        if resized is not None:
            log.info("%s: picture size changed to %dx%d; starting a new segment",
                     self.owner.name, *resized)
        current = self.current
        if packet.is_keyframe and (current is None or resized is not None
                                   or media_us - current.base_us >= self.owner.segment_us):
            self._open_segment(media_us, pts_us)
        elif self.previous is not None and media_us - self.current_base() >= LATE_AUDIO_US:
            self._close(self.previous)
            self.previous = None
        if self.current is None:
            return  # waiting for the first keyframe
        self._video(packet, pts_us)

    def _restart_clock(self) -> None:
        self._close_all()
        self.clock = SourceClock()
        self.pace_anchor = None
        self.last_video_us = None

    def _check_drift(self, pts_us: int, arrival_us: int) -> None:
        """Once calibrated: a source clock far from the wall clock is stamped by arrival."""
        if self.stamper is not None or not self.clock.frozen or self.drift_us is not None:
            return
        drift_us = self.clock.drift_us(pts_us, arrival_us)
        if drift_us < -AHEAD_BOUND_US or drift_us > BEHIND_BOUND_US:
            self.drift_us = drift_us

    def _stamp_by_arrival(self, packet: Packet[Stream], arrival_us: int) -> None:
        """At a keyframe: close what was written on the source's clock, restamp from here."""
        drift_us, self.drift_us = self.drift_us or 0, None
        self.owner.warn_once("drift", "source clock %s the wall clock by %.1f s; stamping "
                             "its packets by arrival from now on",
                             "ran ahead of" if drift_us < 0 else "fell behind",
                             abs(drift_us) / US_PER_S)
        self._restart_clock()
        self.stamper = ArrivalStamper(self.video.index)
        self.stamper.stamp(packet, arrival_us)
        assert packet.dts is not None and packet.time_base is not None
        self._feed_video(packet, to_us(packet.dts, packet.time_base), arrival_us)

    def _check_stall(self, arrival_us: int) -> None:
        """Other streams flow but the video does not: say so, and close what was recorded."""
        if self.watchdog.stalls(arrival_us):
            self.owner.status = self.watchdog.status
            self._place_unstamped(None, arrival_us)
            self._close_all()

    def current_base(self) -> int:
        return self.current.base_us if self.current is not None else 0

    def _video(self, packet: Packet[Stream], pts_us: int) -> None:
        segment = self.current
        assert segment is not None
        segment.end_us = max(segment.end_us, pts_us + self.frame_us)
        segment.write(packet)
        first = self.previous if self.previous is not None else segment
        self.owner.open_span = (self.clock.to_archive(first.min_pts_us),
                                self.clock.to_archive(segment.end_us))
        if self.owner.status != self.owner.recording_status:
            self.owner.status = self.owner.recording_status

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
                                   self.transcoders, video_size=self.sizes.size)
        except ValueError as exc:  # the muxer refused an audio stream: keep the video
            codecs = ", ".join(t.codec_context.name for t in self.templates[1:])
            self.owner.warn_once(f"mux:{codecs}", "audio %s refused by the %s muxer (%s); "
                                 "recording the video without it", codecs, self.fmt, exc)
            self.templates, self.transcoders = [self.video], {}
            writer = SegmentWriter(self.owner.directory, self.fmt, start_us, self.templates,
                                   video_size=self.sizes.size)
        self.current = OpenSegment(writer, dts_us, pts_us, pts_us)

    def _audio(self, packet: Packet[Stream], media_us: int) -> None:
        index = packet.stream.index
        transcoder = self.transcoders.get(index)
        if transcoder is None:
            target = self._segment_at(media_us)
            if target is not None and target.writer.carries(index):
                target.write(packet)
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
                target.write(pkt, index)

    def _segment_at(self, media_us: int) -> OpenSegment | None:
        """The open segment audio at ``media_us`` belongs to: late audio goes to the previous."""
        target = self.current
        if target is not None and media_us < target.base_us:
            target = self.previous
        return None if target is None or media_us < target.base_us else target

    def _close(self, segment: OpenSegment) -> None:
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
        self._place_unstamped(None, now_us())
        for index, transcoder in self.transcoders.items():
            try:
                encoded = transcoder.flush()
            except av.FFmpegError:
                continue
            for pkt, at_us in encoded:
                target = self._segment_at(at_us)
                if target is not None:
                    target.write(pkt, index)
        self._close_all()
