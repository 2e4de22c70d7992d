"""The state machine of one stream-copy cut: selection, timestamp rebasing, gaps and overlaps."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable

import av
from av.audio.codeccontext import AudioCodecContext

from sense_plugin.errors import MediaError, NoRecordError, SenseError
from sense_plugin.media import bitstream as bs
from sense_plugin.media.cutspec import CutCancelled, CutRequest, CutResult, Gap, SourceSegment
from sense_plugin.media.outputs import Outputs
from sense_plugin.media.sink import WriteCancelled

#: Seek this far before the start so the keyframe at or before it is read.
SEEK_MARGIN_US = 5_000_000
#: Audio in range may sit before the video start of the next segment (muxers interleave
#: audio ahead of video): segments starting this soon after the end are read for audio.
AUDIO_TAIL_US = 1_000_000
#: A join counts as a gap when more than this many frame durations are missing.
GAP_FRAMES = 2


class RangeComplete(Exception):
    """Video and audio have both reached the end of the range."""


_Stop = RangeComplete


class _Reseek(Exception):
    """A seek landed after the keyframe before the start; read the segment from its top."""


class Cutter:
    """The state of one cut: selection, timestamp rebasing, gap and overlap handling."""

    def __init__(
        self, request: CutRequest, output: av.container.OutputContainer,
        should_stop: Callable[[], bool], on_progress: Callable[[int, int], None] | None,
        interval_s: float, bytes_written: Callable[[], int],
        should_finish: Callable[[], bool] | None = None,
    ) -> None:
        self.request, self.output = request, output
        self.t0, self.t1 = request.start_us, request.end_us
        self.on_progress, self.should_stop, self.interval_s = on_progress, should_stop, interval_s
        self.outputs = Outputs(output, request.fmt, request.audio, request.subtitles)
        self.started = False
        self.sought = False  # the current segment was entered by seeking
        self.first_us = 0  # archive time of the first keyframe
        self.zero_us = 0  # archive time of output time 0
        self.offset_us = 0  # shift of the current segment that keeps dts increasing
        self.frame_us = 40_000
        self.pending: list[tuple[bs.Packet, int, int]] = []  # GOP before the start (archive µs)
        self.pending_audio: list[tuple[bs.Packet, int, int]] = []
        self.pending_end_us = 0
        self.last_dts = -(1 << 62)
        self.last_audio_dts = -(1 << 62)  # of the input audio (archive µs): drops overlaps
        self.last_audio_out = -(1 << 62)  # of the output audio
        self.audio_decoder: AudioCodecContext | None = None
        self.video_done = False  # a video packet with dts >= the end was read
        self.audio_done = False  # an audio packet with pts >= the end was read
        self.tail: list[tuple[bs.Packet, int, int]] = []  # frames shown after the end, held
        self.prev_end_us: int | None = None  # end of the recording read so far
        self.gaps: list[Gap] = []
        self.join_gap: Gap | None = None
        self.gap_total_us = 0
        self.frames = self.audio_packets = 0
        self.last_frame_us = 0
        self.covered_us = 0
        self.next_report = 0.0
        self.bytes_written = bytes_written
        self.should_finish = should_finish
        self.stopped_us: int | None = None

    # -- driving ------------------------------------------------------------------------------

    def run(self) -> None:
        """Read the overlapping segments in time order until the end of the range."""
        segments = sorted(
            (s for s in self.request.segments
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
        if self.outputs.transcoder is not None:
            for packet, at_us in self.outputs.transcoder.flush():
                self._mux_audio(packet, at_us)
        if not self.started or self.frames == 0:
            raise NoRecordError("no recorded video in the requested range")
        if self.outputs.timestamps is not None:  # the last cue ends one frame after the last
            self.outputs.timestamps.close(self.last_dts + self.frame_us)
        self._report(force=True)

    def result(self, size_bytes: int, sha256: str) -> CutResult:
        """The :class:`CutResult` of a finished cut."""
        return CutResult(
            first_frame_us=self.first_us, last_frame_us=self.last_frame_us,
            frame_count=self.frames, audio_packets=self.audio_packets, gaps=tuple(self.gaps),
            size_bytes=size_bytes, sha256=sha256, stopped_us=self.stopped_us,
        )

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
            with av.open(segment.path) as source:
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
        self._enter(source, segment, seek, vin)
        self.audio_decoder = ain.codec_context if ain is not None else None
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
        vin: av.VideoStream,
    ) -> None:
        """Per-segment state; a real gap since the previous segment; seek near a late start."""
        self.offset_us, self.frame_us = 0, bs.frame_us(vin)
        prev, self.join_gap = self.prev_end_us, None
        if prev is not None and segment.start_us - prev > GAP_FRAMES * self.frame_us:
            self.join_gap = Gap(prev, segment.start_us)
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
                dts_a = next_dts_a - (count - index) * self.frame_us
            else:
                dts_a = self.prev_end_us if self.prev_end_us is not None else pts_a
            self._video(pkt, pts_a, min(dts_a, pts_a))
        undated.clear()

    # -- selection ----------------------------------------------------------------------------

    def _video(self, pkt: bs.Packet, pts_a: int, dts_a: int) -> None:
        end = pts_a + self.frame_us
        if self.prev_end_us is None or end > self.prev_end_us:
            self.prev_end_us = end
        if self.started:
            self._video_in_range(pkt, pts_a, dts_a)
        elif pts_a <= self.t0:
            if pkt.is_keyframe:  # a later GOP: what came before, gaps included, is not output
                self.pending.clear()
                self.pending_audio = [a for a in self.pending_audio if a[1] >= pts_a]
                self.pending_end_us, self.join_gap = end, None
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
        """The cut by presentation time, once started.

        A frame shown at or after the end is held back and written only if a frame shown
        before the end follows it in decoding order (it is then a reference of that frame);
        leading pictures shown before the first keyframe (HEVC RASL after a CRA) cannot decode
        and are dropped. Reading stops once a dts reaches the end: every later frame is shown
        after it.
        """
        if dts_a >= self.t1:
            self.video_done, self.tail = True, []
            if self._audio_finished():
                raise _Stop()
        elif pts_a >= self.t1:
            self.tail.append((pkt, pts_a, dts_a))
        elif pts_a >= self.first_us:
            for held in self.tail:
                self._emit_video(*held, counted=False)
            self.tail.clear()
            self._emit_video(pkt, pts_a, dts_a)

    def _start(self, pkt: bs.Packet, pts_a: int, dts_a: int) -> None:
        """Begin the output at the buffered GOP if it covers t0, else at this keyframe."""
        if pkt.is_keyframe and self.pending_end_us <= self.t0:
            self.pending.clear()
            self.join_gap = None  # a gap before the output's first frame is not in the output
        _, key_pts, key_dts = self.pending[0] if self.pending else (pkt, pts_a, dts_a)
        self.first_us = self.last_frame_us = key_pts
        # Fragmented MP4 has no edit list: with B-frames start at dts 0, not pts 0, so the
        # video is delayed by the reorder depth together with the audio instead of alone.
        self.zero_us = key_pts
        self.started = True
        self.outputs.write_metadata(self.first_us, self.request.title, self.request.comment)
        for packet, p_a, d_a in self.pending:
            if p_a >= key_pts:  # leading pictures of an open GOP's keyframe cannot decode
                self._emit_video(packet, p_a, d_a)
        for packet, p_a, d_a in self.pending_audio:
            self._audio(packet, p_a, d_a)
        self.pending.clear()
        self.pending_audio.clear()
        self._video_in_range(pkt, pts_a, dts_a)

    # -- output -------------------------------------------------------------------------------

    def _emit_video(self, pkt: bs.Packet, pts_a: int, dts_a: int, *, counted: bool = True) -> None:
        if self.join_gap is not None:
            gap, self.join_gap = self.join_gap, None
            self.gaps.append(gap)
            self.gap_total_us += gap.end_us - gap.start_us
        dts = dts_a - self.zero_us + self.offset_us
        if dts <= self.last_dts:  # overlap or jitter at a join: continue one frame later
            self.offset_us += self.last_dts + self.frame_us - dts
            dts = self.last_dts + self.frame_us
        pkt.dts, pkt.pts = dts, max(dts, pts_a - self.zero_us + self.offset_us)
        pkt.stream = self.outputs.video_stream
        out_pts = pkt.pts  # µs; mux_one rescales the packet to the stream's time base
        self.output.mux_one(pkt)
        self.last_dts = dts
        if not counted:
            return  # a reference shown after the end: in the file, not in the range
        self.frames += 1
        if self.outputs.timestamps is not None:
            self.outputs.timestamps.frame(pts_a, out_pts)
        if pts_a > self.last_frame_us:
            self.last_frame_us = pts_a
        if self.on_progress is not None and not self.frames & 15:
            self.covered_us = max(self.covered_us, dts_a - self.first_us - self.gap_total_us)
            self._report()

    def _audio(self, pkt: bs.Packet, pts_a: int, dts_a: int) -> None:
        if not self.started:
            self.pending_audio.append((pkt, pts_a, dts_a))
            return
        if pts_a >= self.t1:
            self.audio_done = True
            if self.video_done:
                raise _Stop()
            return
        if pts_a < self.first_us or dts_a <= self.last_audio_dts:
            return  # before the first frame, or a duplicate where segments overlap
        self.last_audio_dts = dts_a
        transcoder = self.outputs.transcoder
        if transcoder is None:
            self._mux_audio(pkt, pts_a)
            return
        assert self.audio_decoder is not None
        for packet, at_us in transcoder.feed(pkt, self.audio_decoder, pts_a):
            self._mux_audio(packet, at_us)

    def _mux_audio(self, pkt: bs.Packet, at_us: int) -> None:
        """Write an audio packet whose pts is archive time ``at_us`` (dts = pts for audio)."""
        ts = at_us - self.zero_us + self.offset_us
        if ts <= self.last_audio_out:
            return
        pkt.dts = pkt.pts = ts
        pkt.time_base = bs.US_TB
        pkt.stream = self.outputs.audio_stream
        self.output.mux_one(pkt)
        self.last_audio_out = ts
        self.audio_packets += 1

    def _report(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.on_progress is not None and (force or now >= self.next_report):
            self.next_report = now + self.interval_s
            if force:
                end_us = min(self.prev_end_us or self.first_us, self.t1)
                self.covered_us = max(self.covered_us, end_us - self.first_us - self.gap_total_us)
            self.on_progress(self.covered_us, self.bytes_written())

    def _audio_finished(self) -> bool:
        return self.audio_done or self.outputs.aout is None
