"""The output timeline of a cut: its selected packets rebased to output time and muxed, with the
gaps, counts, progress and result of what was written."""

from __future__ import annotations

import time
from collections.abc import Callable

import av
from av.audio.codeccontext import AudioCodecContext

from sense_plugin.media import bitstream as bs
from sense_plugin.media.cutspec import CutResult, Gap
from sense_plugin.media.outputs import Outputs


class OutputTimeline:
    """Where the packets a :class:`~sense_plugin.media.cutter.Cutter` selects go.

    Times in are archive µs; output time 0 is the first keyframe written, and each segment may
    be shifted later (``offset_us``) so that dts keep increasing across joins that overlap.
    """

    def __init__(
        self, output: av.container.OutputContainer, outputs: Outputs,
        on_progress: Callable[[int, int], None] | None, interval_s: float,
        bytes_written: Callable[[], int],
    ) -> None:
        self.output, self.outputs = output, outputs
        self.on_progress, self.interval_s = on_progress, interval_s
        self.bytes_written = bytes_written
        self.first_us = 0  # archive time of the first keyframe
        self.zero_us = 0  # archive time of output time 0
        self.offset_us = 0  # shift of the current segment that keeps dts increasing
        self.frame_us = 40_000
        self.last_dts = -(1 << 62)
        #: Archive dts of the first packet written: a muxer without edit lists (fragmented
        #: MP4) starts the file's time there when it precedes the keyframe (B-frames).
        self.first_dts_us: int | None = None
        self.last_audio_out = -(1 << 62)  # of the output audio
        self.first_audio_us: int | None = None  # output time of the first audio packet
        self.audio_decoder: AudioCodecContext | None = None
        #: A real gap before the current segment, recorded with the next frame written.
        self.join_gap: Gap | None = None
        self.gaps: list[Gap] = []
        self.gap_total_us = 0
        self.frames = self.audio_packets = 0
        self.last_frame_us = 0
        self.covered_us = 0
        self.next_report = 0.0

    def enter(self, frame_us: int, audio_decoder: AudioCodecContext | None) -> None:
        """A new segment: its frame duration and audio decoder; no shift yet."""
        self.offset_us, self.frame_us = 0, frame_us
        self.audio_decoder = audio_decoder

    def start(self, key_pts: int) -> None:
        """The output begins at the keyframe shown at archive time ``key_pts``."""
        self.first_us = self.last_frame_us = key_pts
        # Fragmented MP4 has no edit list: with B-frames start at dts 0, not pts 0, so the
        # video is delayed by the reorder depth together with the audio instead of alone.
        self.zero_us = key_pts

    def video(self, pkt: bs.Packet, pts_a: int, dts_a: int) -> None:
        """Write a video packet of the range (shown before its end)."""
        if self.join_gap is not None:
            gap, self.join_gap = self.join_gap, None
            self.gaps.append(gap)
            self.gap_total_us += gap.end_us - gap.start_us
        if self.first_dts_us is None:
            self.first_dts_us = dts_a
        dts = dts_a - self.zero_us + self.offset_us
        if dts <= self.last_dts:  # overlap or jitter at a join: continue one frame later
            self.offset_us += self.last_dts + self.frame_us - dts
            dts = self.last_dts + self.frame_us
        pkt.dts, pkt.pts = dts, max(dts, pts_a - self.zero_us + self.offset_us)
        pkt.stream = self.outputs.video_stream
        out_pts = pkt.pts  # µs; mux_one rescales the packet to the stream's time base
        self.output.mux_one(pkt)
        self.last_dts = dts
        self.frames += 1
        if self.outputs.timestamps is not None:
            self.outputs.timestamps.frame(pts_a, out_pts)
        if pts_a > self.last_frame_us:
            self.last_frame_us = pts_a
        if self.on_progress is not None and not self.frames & 15:
            self.covered_us = max(self.covered_us, dts_a - self.first_us - self.gap_total_us)
            self.report()

    def audio(self, pkt: bs.Packet, pts_a: int) -> None:
        """Write an audio packet of the range: copied, or fed to the AAC transcoder."""
        transcoder = self.outputs.transcoder
        if transcoder is None:
            self._mux_audio(pkt, pts_a)
            return
        assert self.audio_decoder is not None
        for packet, at_us in transcoder.feed(pkt, self.audio_decoder, pts_a):
            self._mux_audio(packet, at_us)

    def flush_audio(self) -> None:
        """Write what the AAC transcoder still holds (after the last segment)."""
        if self.outputs.transcoder is not None:
            for packet, at_us in self.outputs.transcoder.flush():
                self._mux_audio(packet, at_us)

    def close(self, end_us: int) -> None:
        """Close the text track (its last cue ends one frame after the last) and report the
        recorded time up to archive time ``end_us``."""
        if self.outputs.timestamps is not None:
            self.outputs.timestamps.close(self.last_dts + self.frame_us)
        self.report(end_us=end_us)

    def result(self, size_bytes: int, sha256: str, stopped_us: int | None) -> CutResult:
        """What was written, as the :class:`CutResult` of the finished file."""
        return CutResult(
            first_frame_us=self.first_us, last_frame_us=self.last_frame_us,
            frame_count=self.frames, audio_packets=self.audio_packets, gaps=tuple(self.gaps),
            size_bytes=size_bytes, sha256=sha256, stopped_us=stopped_us,
        )

    def report(self, *, end_us: int | None = None) -> None:
        """Progress, at most every ``interval_s``; with ``end_us`` now, covered up to it."""
        now = time.monotonic()
        force = end_us is not None
        if self.on_progress is not None and (force or now >= self.next_report):
            self.next_report = now + self.interval_s
            if end_us is not None:
                self.covered_us = max(self.covered_us, end_us - self.first_us - self.gap_total_us)
            self.on_progress(self.covered_us, self.bytes_written())

    def _mux_audio(self, pkt: bs.Packet, at_us: int) -> None:
        """Write an audio packet whose pts is archive time ``at_us`` (dts = pts for audio)."""
        ts = at_us - self.zero_us + self.offset_us
        if ts <= self.last_audio_out:
            return
        pkt.dts = pkt.pts = ts
        pkt.time_base = bs.US_TB
        pkt.stream = self.outputs.audio_stream
        if self.first_audio_us is None:
            self.first_audio_us = ts
        self.output.mux_one(pkt)
        self.last_audio_out = ts
        self.audio_packets += 1
