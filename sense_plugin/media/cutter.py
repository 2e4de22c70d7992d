"""The state machine of one stream-copy cut: segments read in time order, packets selected by
presentation time (the GOP before the start, references after the end); the selected packets
go to its :class:`~sense_plugin.media.timeline.OutputTimeline`."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

import av

from sense_plugin.errors import MediaError, NoRecordError, SenseError
from sense_plugin.media import bitstream as bs
from sense_plugin.media.cutspec import (
    GAP_TOLERANCE_US,
    SEEK_MARGIN_US,
    CutCancelled,
    CutRequest,
    CutResult,
    Gap,
    SourceSegment,
)
from sense_plugin.media.outputs import Outputs
from sense_plugin.media.sink import WriteCancelled
from sense_plugin.media.sourceopen import open_source
from sense_plugin.media.timeline import OutputTimeline

#: Audio in range may sit before the video start of the next segment (muxers interleave
#: audio ahead of video): segments starting this soon after the end are read for audio.
AUDIO_TAIL_US = 1_000_000


class RangeComplete(Exception):
    """Video and audio have both reached the end of the range."""


_Stop = RangeComplete


class _Reseek(Exception):
    """A seek landed after the keyframe before the start; read the segment from its top."""


class Cutter:
    """The state of one cut: reading, selection, joins of segments that overlap or leave gaps."""

    def __init__(
        self, request: CutRequest, output: av.container.OutputContainer,
        should_stop: Callable[[], bool], on_progress: Callable[[int, int], None] | None,
        interval_s: float, bytes_written: Callable[[], int],
        should_finish: Callable[[], bool] | None = None,
    ) -> None:
        self.request = request
        self.t0, self.t1 = request.source.start_us, request.source.end_us
        self.should_stop = should_stop
        self.outputs = Outputs(output, request.fmt, request.audio, request.subtitles)
        self.timeline = OutputTimeline(output, self.outputs, on_progress, interval_s,
                                       bytes_written)
        self.started = False
        self.sought = False  # the current segment was entered by seeking
        self.pending: list[tuple[bs.Packet, int, int]] = []  # GOP before the start (archive µs)
        self.pending_audio: list[tuple[bs.Packet, int, int]] = []
        self.pending_end_us = 0
        self.last_audio_dts = -(1 << 62)  # of the input audio (archive µs): drops overlaps
        self.video_done = False  # a video packet shown or decoded at or after the end was read
        self.audio_done = False  # an audio packet with pts >= the end was read
        self.prev_end_us: int | None = None  # end of the recording read so far
        self.should_finish = should_finish
        self.stopped_us: int | None = None

    # -- driving ------------------------------------------------------------------------------

    def run(self) -> None:
        """Read the overlapping segments in time order until the end of the range."""
        segments = sorted(
            (s for s in self.request.source.segments
             if s.end_us > self.t0 and s.start_us < self.t1 + AUDIO_TAIL_US),
            key=lambda s: s.start_us,
        )
        try:
            for segment in segments:
                self.read(segment)
        except _Stop:
            pass
        self.close_range()

    def read(self, segment: SourceSegment) -> None:
        """Copy what one segment (the next in time order) holds of the range; raises
        ``_Stop`` once the range is complete."""
        if segment.start_us >= self.t1:
            self._read_tail(segment)
        elif not self._read_segment(segment, seek=True):
            self._read_segment(segment, seek=False)

    def close_range(self) -> None:
        """After the last segment: flush transcoded audio, close the text track, report."""
        timeline = self.timeline
        timeline.flush_audio()
        if not self.started or timeline.frames == 0:
            raise NoRecordError("no recorded video in the requested range")
        recorded_end_us = self.prev_end_us or timeline.first_us
        if self.t1 - recorded_end_us > GAP_TOLERANCE_US:  # the recording stops short
            timeline.gaps.append(Gap(recorded_end_us, self.t1))
        timeline.close(min(self.prev_end_us or timeline.first_us, self.t1))

    def result(self, size_bytes: int, sha256: str) -> CutResult:
        """The :class:`CutResult` of a finished cut."""
        return self.timeline.result(size_bytes, sha256, self.stopped_us)

    def _read_tail(self, segment: SourceSegment) -> None:
        """A segment after the end, read only for audio muxed ahead of its video: one that
        cannot be read (deleted by retention meanwhile, say) costs that audio, not the export."""
        if not self.started or (self.video_done and self._audio_finished()):
            raise _Stop()
        try:
            self._read_segment(segment, seek=False)
        except MediaError:
            raise _Stop() from None

    def _read_segment(self, segment: SourceSegment, *, seek: bool) -> bool:
        """Copy the wanted packets of one segment; False asks for a re-read without seeking."""
        try:
            # the output streams are copies of the first segment's: it alone is fully probed
            with open_source(segment.path, header_only=self.outputs.vout is not None) as source:
                self._copy(source, segment, seek)
                return True
        except _Reseek:
            return False
        except (_Stop, CutCancelled, WriteCancelled, SenseError):
            raise
        except av.FFmpegError as exc:
            raise MediaError(f"while copying {os.path.basename(segment.path)}: {exc}") from exc
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.EACCES, errno.EIO):
                raise MediaError(
                    f"cannot read {os.path.basename(segment.path)}: {exc.strerror}"
                ) from exc
            raise

    def _copy(
        self, source: av.container.InputContainer, segment: SourceSegment, seek: bool
    ) -> None:
        """The per-packet loop: archive times in integer µs, then select and emit."""
        if not source.streams.video:
            return
        vin = source.streams.video[0]
        ain = self.outputs.open(source)
        fix_video, fix_audio = bs.converters(vin, ain, self.outputs.video_prefixed,
                                             self.request.fmt)
        v_mul, v_den, v_base = bs.timing(vin, vin, segment.start_us)
        audio_timing = bs.timing(ain, vin, segment.start_us) if ain is not None else (1, 1, 0)
        self._enter(source, segment, seek, vin, ain)
        vindex, stop = vin.index, self.should_stop
        undated: list[tuple[bs.Packet, int]] = []
        for pkt in source.demux([vin, ain] if ain is not None else [vin]):
            if stop():
                raise CutCancelled()
            if not pkt.size:
                continue  # flush packets only
            if pkt.stream_index != vindex:
                self._read_audio(fix_audio(pkt) if fix_audio else pkt, *audio_timing)
                continue
            pts, dts, dur = pkt.pts, pkt.dts, pkt.duration
            if self.video_done or (pts is None and (pts := dts) is None):
                continue
            pts_a = v_base + pts * v_mul // v_den
            pkt.time_base = bs.US_TB
            if dur:
                pkt.duration = dur * v_mul // v_den
            if fix_video is not None:
                pkt = fix_video(pkt)
            if dts is None:  # Matroska with B-frames: filled in once a later dts is known
                undated.append((pkt, pts_a))
                continue
            dts_a = v_base + dts * v_mul // v_den
            if undated:
                self._fill_dts(undated, dts_a)
            if self.stopped_us is None and self.should_finish is not None \
                    and self.should_finish():
                self._finish_at(dts_a)
            self._video(pkt, pts_a, dts_a)
        if undated:
            self._fill_dts(undated, None)

    def _finish_at(self, dts_a: int) -> None:
        """End the range at this packet (stop): frames shown before it whose references are
        written stay in; the ordinary end-of-range rules finish the file."""
        self.stopped_us = self.t1 = min(self.t1, max(dts_a, self.t0 + 1))

    def _enter(
        self, source: av.container.InputContainer, segment: SourceSegment, seek: bool,
        vin: av.VideoStream, ain: av.AudioStream | None,
    ) -> None:
        """Per-segment state; a real gap since the previous segment; seek near a late start."""
        timeline = self.timeline
        timeline.enter(bs.frame_us(vin), ain.codec_context if ain is not None else None)
        prev, timeline.join_gap = self.prev_end_us, None
        if prev is not None and segment.start_us - prev > GAP_TOLERANCE_US:
            timeline.join_gap = Gap(prev, segment.start_us)
        self.sought = seek and not self.started and self.t0 - segment.start_us > SEEK_MARGIN_US
        if self.sought:  # t0 is well inside this segment: earlier GOPs do not matter
            self.pending.clear()
            self.pending_audio.clear()
            v_mul, v_den, v_base = bs.timing(vin, vin, segment.start_us)
            target = (self.t0 - SEEK_MARGIN_US - v_base) * v_den // v_mul
            source.seek(target, stream=vin, backward=True)

    def _read_audio(self, pkt: bs.Packet, mul: int, den: int, base: int) -> None:
        pts, dts, dur = pkt.pts, pkt.dts, pkt.duration
        if pts is None:
            return
        pkt.time_base = bs.US_TB
        if dur:
            pkt.duration = dur * mul // den
        pts_a = base + pts * mul // den
        self._audio(pkt, pts_a, pts_a if dts is None else base + dts * mul // den)

    def _fill_dts(self, undated: list[tuple[bs.Packet, int]], next_dts_a: int | None) -> None:
        """Give packets without dts evenly spaced ones before the next known dts."""
        count = len(undated)
        for index, (pkt, pts_a) in enumerate(undated):
            if next_dts_a is not None:
                dts_a = next_dts_a - (count - index) * self.timeline.frame_us
            else:
                dts_a = self.prev_end_us if self.prev_end_us is not None else pts_a
            self._video(pkt, pts_a, min(dts_a, pts_a))
        undated.clear()

    # -- selection by presentation time -------------------------------------------------------

    def _video(self, pkt: bs.Packet, pts_a: int, dts_a: int) -> None:
        end = pts_a + self.timeline.frame_us
        if self.prev_end_us is None or end > self.prev_end_us:
            self.prev_end_us = end
        if self.started:
            self._video_in_range(pkt, pts_a, dts_a)
        elif pts_a <= self.t0:
            if pkt.is_keyframe:  # a later GOP: what came before, gaps included, is not output
                self.pending.clear()
                self.pending_audio = [a for a in self.pending_audio if a[1] >= pts_a]
                self.pending_end_us, self.timeline.join_gap = end, None
            if self.pending or pkt.is_keyframe:
                self.pending.append((pkt, pts_a, dts_a))
                self.pending_end_us = max(self.pending_end_us, end)
        elif self.pending or pkt.is_keyframe:
            if self.sought and not self.pending:
                raise _Reseek()  # the seek overshot the keyframe before t0
            if dts_a >= self.t1:
                raise _Stop()
            self._start(pkt, pts_a, dts_a)

    def _video_in_range(self, pkt: bs.Packet, pts_a: int, dts_a: int) -> None:
        """The cut by presentation time, once started (docs/evidence.rst, "The end").

        The first frame read whose pts or dts is at or after the end ends the video: it is
        shown after the end, and the frames that follow it in decoding order are either shown
        after it too or belong to the B-run it anchors (they reference it), so they go with
        it. No frame after the end is ever in the file; a B-run cut by the end is left out
        whole (at most the reorder depth before the end, less than the gap tolerance).
        Leading pictures shown before the first keyframe (HEVC RASL after a CRA) cannot
        decode and are dropped.
        """
        if dts_a >= self.t1 or pts_a >= self.t1:
            self.video_done = True
            if self._audio_finished():
                raise _Stop()
        elif pts_a >= self.timeline.first_us:
            self.timeline.video(pkt, pts_a, dts_a)

    def _start(self, pkt: bs.Packet, pts_a: int, dts_a: int) -> None:
        """Begin the output at the buffered GOP if it covers t0, else at this keyframe."""
        if pkt.is_keyframe and self.pending_end_us <= self.t0:
            self.pending.clear()
            # a gap before the output's first frame is not in the output
            self.timeline.join_gap = None
        _, key_pts, _ = self.pending[0] if self.pending else (pkt, pts_a, dts_a)
        self.timeline.start(key_pts)
        self.started = True
        self.outputs.write_metadata(key_pts, self.request.title, self.request.comment)
        for packet, p_a, d_a in self.pending:
            if p_a >= key_pts:  # leading pictures of an open GOP's keyframe cannot decode
                self.timeline.video(packet, p_a, d_a)
        for packet, p_a, d_a in self.pending_audio:
            self._audio(packet, p_a, d_a)
        self.pending.clear()
        self.pending_audio.clear()
        self._video_in_range(pkt, pts_a, dts_a)

    def _audio(self, pkt: bs.Packet, pts_a: int, dts_a: int) -> None:
        """Audio by presentation time: held until the start, written up to the end."""
        if not self.started:
            self.pending_audio.append((pkt, pts_a, dts_a))
            return
        if pts_a >= self.t1:
            self.audio_done = True
            if self.video_done:
                raise _Stop()
            return
        if pts_a < self.timeline.first_us or dts_a <= self.last_audio_dts:
            return  # before the first frame, or a duplicate where segments overlap
        self.last_audio_dts = dts_a
        self.timeline.audio(pkt, pts_a)

    def _audio_finished(self) -> bool:
        return self.audio_done or self.outputs.aout is None
