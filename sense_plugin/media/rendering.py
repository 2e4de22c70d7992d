"""A rendered export: decode → masks, crop, scale, rate, burned-in text → encode, one file.

Used only when a request carries ``<render>``; every other export stays a stream copy. The
output starts at the first frame at or after the start (re-encoding allows an exact start)
and ends before the end. Audio is decoded and encoded again as AAC, so it fits every output
container whatever the camera sent. Synchronous PyAV, run inside an export worker process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import av

from sense_plugin.errors import MediaError, NoRecordError, SenseError
from sense_plugin.media.cutspec import (
    GAP_TOLERANCE_US,
    SEEK_MARGIN_US,
    CutCancelled,
    CutResult,
    Gap,
    SourceRange,
    SourceSegment,
)
from sense_plugin.media.filters import FrameFilter
from sense_plugin.media.renderoptions import CODECS, QUALITY_CRF, RenderOptions
from sense_plugin.media.subtitles import TimestampTrack, supported
from sense_plugin.timestamps import creation_time_text

US = 1_000_000
#: Output video time base: 90 kHz, as in MPEG-TS, exact for every common frame rate.
VIDEO_TB = Fraction(1, 90_000)
#: Keyframe interval of the output (seekable players, splittable files).
KEYFRAME_EVERY_S = 2
AUDIO_RESYNC_US = 100_000
#: libx265 (B-frames with pyramid) learns its decode delay from the third frame it is given;
#: for a picture of one or two frames it stamps the decode time from memory it never set.
X265_DELAY_FRAMES = 2


class _Stop(Exception):
    """The first frame at or after the end of the range was decoded."""


@dataclass(frozen=True)
class RenderRequest:
    """Render ``source`` into ``out_path`` as ``fmt``."""

    source: SourceRange
    out_path: str
    fmt: str
    options: RenderOptions
    metadata: dict[str, str] = field(default_factory=dict)
    preset: str = "medium"
    #: ``<timestamps>subtitle</timestamps>``: the archive-time text track as well (mp4/mkv).
    subtitles: bool = False


class Renderer:
    """The state of one rendered export, fed frame by frame from the segments."""

    def __init__(self, request: RenderRequest, output: av.container.OutputContainer,
                 should_stop: Callable[[], bool],
                 on_progress: Callable[[int, int], None] | None,
                 interval_s: float, bytes_written: Callable[[], int]) -> None:
        self.request, self.options, self.output = request, request.options, output
        self.should_stop, self.on_progress, self.interval_s = should_stop, on_progress, interval_s
        self.bytes_written = bytes_written
        self.vout: av.VideoStream | None = None
        self.cues: TimestampTrack | None = None
        self.aout: av.AudioStream | None = None
        self.resampler: av.AudioResampler | None = None
        self.filter: FrameFilter | None = None
        self.first_us: int | None = None
        self.last_us = 0
        self.frame_us = 40_000
        self.next_keep_us = 0
        self.frames = self.audio_packets = 0
        self.gaps: list[Gap] = []
        self.gap_total_us = 0
        self.audio_samples: int | None = None  # next output audio pts, in samples
        self.next_report = 0.0

    # -- driving ------------------------------------------------------------------------------

    def run(self) -> None:
        source = self.request.source
        segments = sorted((s for s in source.segments
                           if s.end_us > source.start_us and s.start_us < source.end_us),
                          key=lambda s: s.start_us)
        try:
            for segment in segments:
                self._read(segment)
        except _Stop:
            pass
        if self.vout is None or self.frames == 0:
            raise NoRecordError("no recorded video in the requested range")
        recorded_end_us = self.last_us + self._step_us()
        if source.end_us - recorded_end_us > GAP_TOLERANCE_US:  # the recording stops short
            self.gaps.append(Gap(recorded_end_us, source.end_us))
        for packet in self.vout.encode(None):
            self._mux_video(packet)
        if self.aout is not None:
            self._encode_audio(None)
        if self.cues is not None and self.first_us is not None:
            self.cues.close(self.last_us - self.first_us + self.frame_us)
        self._report(force=True)

    def result(self, size_bytes: int, sha256: str,
               identity: tuple[int, int] = (0, 0)) -> CutResult:
        return CutResult(
            first_frame_us=self.first_us or 0, last_frame_us=self.last_us,
            frame_count=self.frames, audio_packets=self.audio_packets, gaps=tuple(self.gaps),
            size_bytes=size_bytes, sha256=sha256, file_dev=identity[0], file_ino=identity[1],
        )

    def _read(self, segment: SourceSegment) -> None:
        try:
            with av.open(segment.path) as source:
                self._decode(source, segment)
        except (_Stop, CutCancelled, SenseError):
            raise
        except av.FFmpegError as exc:
            raise MediaError(f"while rendering {os.path.basename(segment.path)}: {exc}") from exc
        except OSError as exc:
            raise MediaError(
                f"cannot read {os.path.basename(segment.path)}: {exc.strerror}") from exc

    def _decode(self, source: av.container.InputContainer, segment: SourceSegment) -> None:
        if not source.streams.video:
            return
        vin = source.streams.video[0]
        vin.thread_type = "AUTO"
        ain = source.streams.audio[0] if source.streams.audio else None
        vtb = vin.time_base or Fraction(1, US)
        base_us = segment.start_us - int((vin.start_time or 0) * vtb * US)
        rate = vin.average_rate or vin.guessed_rate
        self.frame_us = int(US / rate) if rate else 40_000
        if self.request.source.start_us - segment.start_us > SEEK_MARGIN_US:
            target = int((self.request.source.start_us - SEEK_MARGIN_US - base_us) / (vtb * US))
            source.seek(target, stream=vin, backward=True)
        streams = [vin] if ain is None else [vin, ain]
        for packet in source.demux(streams):
            if self.should_stop():
                raise CutCancelled()
            for frame in packet.decode():
                if not isinstance(frame, av.VideoFrame | av.AudioFrame):
                    continue
                if frame.pts is None or frame.time_base is None:
                    continue
                archive_us = base_us + int(frame.pts * frame.time_base * US)
                if isinstance(frame, av.VideoFrame):
                    self._video(frame, archive_us)
                else:
                    self._audio(frame, archive_us)

    # -- video --------------------------------------------------------------------------------

    def _video(self, frame: av.VideoFrame, archive_us: int) -> None:
        request = self.request
        if archive_us < request.source.start_us or archive_us <= self.last_us:
            return  # before the range, or a repeat where segments overlap
        if archive_us >= request.source.end_us:
            raise _Stop()
        if self.options.fps and archive_us < self.next_keep_us:
            return
        if self.vout is None:
            self._open_video(frame)
            # before the first packet: the header states the first frame's archive time
            self.output.metadata["creation_time"] = creation_time_text(archive_us)
        self._track(archive_us)
        assert self.first_us is not None and self.vout is not None and self.filter is not None
        out = self.filter.apply(frame, archive_us)
        if self.cues is not None:
            self.cues.frame(archive_us, archive_us - self.first_us)
        out.pts = (archive_us - self.first_us) * VIDEO_TB.denominator // US
        out.time_base = VIDEO_TB
        for packet in self.vout.encode(out):
            self._mux_video(packet)
        self.frames += 1
        self._report()

    def _mux_video(self, packet: av.Packet[av.VideoStream]) -> None:
        """Mux one encoded video packet, with a decode time libx265 may have left unset.

        libx265 stamps the decode time of its first frames as ``pts`` minus a delay it
        measures only once its third frame arrives; an output of one or two frames gets an
        uninitialised delay, so a garbage ``dts`` that the muxer refuses (or, worse, writes)
        now and then. Frames that few are never reordered: decode order is display order."""
        if self.options.codec == "h265" and self.frames <= X265_DELAY_FRAMES:
            packet.dts = packet.pts
        self.output.mux(packet)

    def _track(self, archive_us: int) -> None:
        """Gaps, the decimation clock and the first/last frame times."""
        if self.first_us is None:
            self.first_us = archive_us
        elif archive_us - (self.last_us + self._step_us()) > GAP_TOLERANCE_US:
            gap = Gap(self.last_us + self._step_us(), archive_us)
            self.gaps.append(gap)
            self.gap_total_us += gap.end_us - gap.start_us
        if self.options.fps:
            period = int(US / self.options.fps)
            self.next_keep_us = (archive_us + period if not self.next_keep_us
                                 else max(self.next_keep_us + period, archive_us + period // 2))
        self.last_us = archive_us

    def _step_us(self) -> int:
        """How long a written frame lasts: a source frame, or the period of ``<fps>``."""
        fps = self.options.fps
        return max(self.frame_us, int(US / fps)) if fps else self.frame_us

    def _open_video(self, frame: av.VideoFrame) -> None:
        """Create the filter and the encoder from the first frame's size and the options."""
        opts = self.options
        self.filter = FrameFilter(opts, frame.width, frame.height)
        width, height = self.filter.size
        codec = CODECS[opts.codec]
        rate = (Fraction(opts.fps).limit_denominator(1000) if opts.fps
                else Fraction(US, self.frame_us))
        vout = self.output.add_stream(codec, rate=rate)
        assert isinstance(vout, av.VideoStream)
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        vout.codec_context.time_base = VIDEO_TB
        # frame threads, as the ffmpeg CLI uses: PyAV's default (slice threads) costs
        # compression efficiency with x264
        vout.codec_context.thread_type = "AUTO"
        vout.codec_context.thread_count = 0
        gop = max(1, round(float(rate) * KEYFRAME_EVERY_S))
        params = f"keyint={gop}:min-keyint={gop}"
        vout.options = {"crf": str(QUALITY_CRF[opts.quality]), "preset": self.request.preset,
                        f"{'x264' if opts.codec == 'h264' else 'x265'}-params": params}
        if opts.codec == "h265" and self.request.fmt == "mp4":
            vout.codec_tag = "hvc1"
        self.vout = vout
        if self.request.subtitles and supported(self.request.fmt):
            self.cues = TimestampTrack(self.output, self.request.fmt)

    # -- audio --------------------------------------------------------------------------------

    def _audio(self, frame: av.AudioFrame, archive_us: int) -> None:
        if self.first_us is None or archive_us < self.first_us:
            return  # audio before the first frame shown
        if archive_us >= self.request.source.end_us:
            return
        if self.aout is None:
            layout = "mono" if frame.layout.nb_channels == 1 else "stereo"
            aout = self.output.add_stream("aac", rate=frame.sample_rate)
            assert isinstance(aout, av.AudioStream)
            aout.layout = layout
            aout.format = "fltp"
            self.aout = aout
            self.resampler = av.AudioResampler(format="fltp", layout=layout,
                                               rate=frame.sample_rate, frame_size=1024)
        assert self.aout is not None and self.resampler is not None
        rate = self.aout.rate
        expected = None if self.audio_samples is None else (
            self.first_us + self.audio_samples * US // rate)
        if expected is None or archive_us - expected > AUDIO_RESYNC_US:
            self.audio_samples = (archive_us - self.first_us) * rate // US  # start or gap
        elif expected - archive_us > AUDIO_RESYNC_US:
            return  # overlapping segments repeat audio already written
        frame.pts = None
        self._encode_audio(frame)

    def _encode_audio(self, frame: av.AudioFrame | None) -> None:
        assert self.aout is not None and self.resampler is not None
        for chunk in self.resampler.resample(frame):
            assert self.audio_samples is not None
            chunk.pts, chunk.time_base = self.audio_samples, Fraction(1, self.aout.rate)
            self.audio_samples += chunk.samples
            for packet in self.aout.encode(chunk):
                self.output.mux(packet)
                self.audio_packets += 1
        if frame is None:
            for packet in self.aout.encode(None):
                self.output.mux(packet)
                self.audio_packets += 1

    def _report(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.on_progress is not None and (force or now >= self.next_report):
            self.next_report = now + self.interval_s
            covered = self.last_us - (self.first_us or self.last_us) - self.gap_total_us
            if force:
                covered += self.frame_us
            self.on_progress(max(0, covered), self.bytes_written())
