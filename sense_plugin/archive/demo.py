"""Synthetic archive segments: encoded video with the camera label and archive clock burned in."""

from __future__ import annotations

import array
import math
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
from av.video.frame import PictureType

from sense_plugin import demo_defaults as defaults
from sense_plugin.archive.font import ADVANCE, GLYPH_HEIGHT, render_text
from sense_plugin.errors import MediaError
from sense_plugin.naming import MUXERS, SEGMENT_EXTENSIONS, segment_filename
from sense_plugin.timestamps import US_PER_S, creation_time_text, us_to_datetime

ENCODERS = {"h264": "libx264", "hevc": "libx265"}

_CLOCK_CHARS = len("YYYY-MM-DD HH:MM:SS.mmm")
_PAPER, _INK = 16, 235
_AUDIO_RATE = 16_000
_AUDIO_FRAME = 1024
_TONE_HZ = 440


def clock_text(instant_us: int) -> str:
    """The burned-in clock: ``YYYY-MM-DD HH:MM:SS.mmm`` (UTC, truncated to milliseconds)."""
    moment = us_to_datetime(instant_us)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


class Painter:
    """Builds yuv420p frames cheaply: static planes and rows are cached, only the clock and
    the scrolling stripes change from frame to frame."""

    def __init__(self, width: int, height: int, label: str) -> None:
        if width < 16 or height < 16 or width % 2 or height % 2:
            raise ValueError(f"frame size {width}x{height} must be even and at least 16x16")
        self.width, self.height = width, height
        probe = av.VideoFrame(width, height, "yuv420p")
        self._line = probe.planes[0].line_size
        self.scale = max(1, min((width - 4) // (_CLOCK_CHARS * ADVANCE + 2), height // 40))
        self._margin = 2 * self.scale
        text_h = GLYPH_HEIGHT * self.scale
        self._clock_top = 2 * self._margin + text_h
        self._band_h = min(height, self._clock_top + text_h + self._margin)
        blank = self._pad(b"")
        label_rows = [self._pad(row) for row in render_text(label, self.scale, _INK, _PAPER)]
        self._rows: list[bytes] = [blank] * self._band_h
        for offset, row in enumerate(label_rows[: self._band_h - self._margin]):
            self._rows[self._margin + offset] = row
        self._period = 32 * self.scale
        self._stripes = self._stripe_rows()
        tint = sum(label.encode()) % 64
        self._chroma = [
            self._plane_bytes(probe, 1, 96 + tint),
            self._plane_bytes(probe, 2, 160 - tint),
        ]

    @property
    def clock_rows(self) -> range:
        """Luma rows that hold the burned-in clock (for tests and checks)."""
        return range(self._clock_top, self._band_h)

    def frame(self, index: int, instant_us: int) -> av.VideoFrame:
        """Return frame ``index`` showing ``instant_us``; the encoder decides its picture type."""
        rows = self._rows.copy()
        clock = render_text(clock_text(instant_us), self.scale, _INK, _PAPER)
        top = self._clock_top
        rows[top : top + len(clock)] = [self._pad(row) for row in clock][: self._band_h - top]
        shift, period, stripes = index * 2 * self.scale, self._period, self._stripes
        rows.extend(stripes[(y + shift) % period] for y in range(self._band_h, self.height))
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        frame.planes[0].update(b"".join(rows))
        frame.planes[1].update(self._chroma[0])
        frame.planes[2].update(self._chroma[1])
        # Synthetic frames may carry an I flag; NONE lets the encoder's GOP settings decide.
        frame.pict_type = PictureType.NONE
        return frame

    def _pad(self, row: bytes) -> bytes:
        body = (bytes([_PAPER]) * self._margin + row)[: self.width]
        return body.ljust(self.width, bytes([_PAPER])).ljust(self._line, b"\0")

    def _stripe_rows(self) -> list[bytes]:
        period = self._period
        wave = bytes(40 + abs(2 * x - period) * 160 // period for x in range(period))
        tape = wave * (self.width // period + 2)
        return [tape[off : off + self.width].ljust(self._line, b"\0") for off in range(period)]

    @staticmethod
    def _plane_bytes(probe: av.VideoFrame, index: int, value: int) -> bytes:
        plane = probe.planes[index]
        return bytes([value]) * plane.buffer_size


def write_segment(
    path: Path,
    *,
    start_us: int,
    duration_s: float,
    fmt: str = "mp4",
    width: int = defaults.WIDTH,
    height: int = defaults.HEIGHT,
    fps: int = defaults.FPS,
    gop_frames: int = defaults.GOP_FRAMES,
    bitrate_bps: int = defaults.ARCHIVE_BITRATE_BPS,
    label: str = "CAM",
    codec: str = "h264",
    audio: bool = False,
    bframes: int = 0,
) -> None:
    """Encode one synthetic segment of ``duration_s`` seconds starting at archive time ``start_us``.

    Stream timestamps start at 0; the archive start is carried by the file name (by convention,
    see :func:`segment_filename`) and the ``creation_time`` metadata. A keyframe is placed
    every ``gop_frames`` frames exactly. The file appears atomically (temporary name, rename).
    Raises :class:`MediaError` if encoding fails.
    """
    path = Path(path)
    muxer = MUXERS[_check_fmt(fmt)]
    if codec not in ENCODERS:
        raise ValueError(f"unknown codec {codec!r}; expected one of {sorted(ENCODERS)}")
    frames = max(1, round(duration_s * fps))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        # mp4 keeps only whole seconds in mvhd; metadata tags keep the microseconds too.
        options = {"movflags": "use_metadata_tags"} if fmt == "mp4" else {}
        with av.open(str(tmp), "w", format=muxer, options=options) as container:
            container.metadata["creation_time"] = creation_time_text(start_us)
            container.metadata["title"] = label
            video = _add_video(container, fmt, codec, width, height, fps, gop_frames,
                               bitrate_bps, bframes)
            sound = container.add_stream("aac", rate=_AUDIO_RATE, layout="mono") if audio else None
            if sound is not None:
                sound.bit_rate = 32_000
            _encode_all(container, video, sound, Painter(width, height, label),
                        start_us, frames, fps)
        os.replace(tmp, path)
    except av.FFmpegError as exc:
        raise MediaError(f"cannot write demo segment {path.name}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _add_video(
    container: av.container.OutputContainer, fmt: str, codec: str, width: int, height: int,
    fps: int, gop_frames: int, bitrate_bps: int, bframes: int,
) -> av.VideoStream:
    gop = max(1, gop_frames)
    params = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}"
    options = {"preset": "ultrafast"}
    if bframes == 0:
        options["tune"] = "zerolatency"
    if codec == "hevc":
        options["x265-params"] = params + ":open-gop=0:log-level=error"
    else:
        options["x264-params"] = params
    stream = container.add_stream(ENCODERS[codec], rate=fps, options=options)
    assert isinstance(stream, av.VideoStream)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.bit_rate = bitrate_bps
    stream.codec_context.gop_size = gop
    stream.codec_context.time_base = Fraction(1, fps)
    if codec == "hevc" and fmt == "mp4":
        stream.codec_context.codec_tag = "hvc1"  # Apple players reject the default 'hev1'
    return stream


def _encode_all(
    container: av.container.OutputContainer, video: av.VideoStream, sound: av.AudioStream | None,
    painter: Painter, start_us: int, frames: int, fps: int,
) -> None:
    tones = _tone_frames(frames * _AUDIO_RATE // fps) if sound is not None else iter(())
    pending = next(tones, None)
    time_base = Fraction(1, fps)
    for index in range(frames):
        frame = painter.frame(index, start_us + index * US_PER_S // fps)
        frame.pts, frame.time_base = index, time_base
        container.mux(video.encode(frame))
        # Keep the audio no further ahead than the video so the muxer interleaves cheaply.
        while sound is not None and pending is not None and \
                pending.pts is not None and pending.pts * fps <= index * _AUDIO_RATE:
            container.mux(sound.encode(pending))
            pending = next(tones, None)
    container.mux(video.encode(None))
    while sound is not None and pending is not None:
        container.mux(sound.encode(pending))
        pending = next(tones, None)
    if sound is not None:
        container.mux(sound.encode(None))


def _tone_frames(total_samples: int) -> Iterator[av.AudioFrame]:
    """A 440 Hz tone as mono float-planar frames; one second holds whole periods, so loop it."""
    second = array.array(
        "f", (0.2 * math.sin(2 * math.pi * _TONE_HZ * i / _AUDIO_RATE) for i in range(_AUDIO_RATE))
    )
    samples = (second * 2).tobytes()
    for first in range(0, total_samples, _AUDIO_FRAME):
        count = min(_AUDIO_FRAME, total_samples - first)
        frame = av.AudioFrame(format="fltp", layout="mono", samples=count)
        offset = (first % _AUDIO_RATE) * 4
        frame.planes[0].update(samples[offset : offset + count * 4])
        frame.sample_rate, frame.pts = _AUDIO_RATE, first
        frame.time_base = Fraction(1, _AUDIO_RATE)
        yield frame


def generate_device(
    directory: Path,
    *,
    name: str,
    start_us: int,
    end_us: int,
    segment_s: float = defaults.ARCHIVE_SEGMENT_S,
    fmt: str = "mp4",
    width: int = defaults.WIDTH,
    height: int = defaults.HEIGHT,
    fps: int = defaults.FPS,
    gop_frames: int = defaults.GOP_FRAMES,
    bitrate_bps: int = defaults.ARCHIVE_BITRATE_BPS,
    audio: bool = False,
    codec: str = "h264",
    bframes: int = 0,
) -> list[Path]:
    """Write consecutive segments covering ``[start_us, end_us)`` into ``directory``.

    Each segment but possibly the last is ``segment_s`` long and starts with a keyframe; frame
    ``n`` of the device is at ``start_us + n * 1e6 / fps``. Returns the paths in time order.
    """
    if end_us <= start_us:
        raise ValueError("end_us must be after start_us")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    per_segment = max(1, round(segment_s * fps))
    total = -(-(end_us - start_us) * fps // US_PER_S)
    paths: list[Path] = []
    for first in range(0, total, per_segment):
        seg_start_us = start_us + first * US_PER_S // fps
        path = directory / segment_filename(seg_start_us, fmt)
        write_segment(
            path, start_us=seg_start_us, duration_s=min(per_segment, total - first) / fps,
            fmt=fmt, width=width, height=height, fps=fps, gop_frames=gop_frames,
            bitrate_bps=bitrate_bps, label=name, codec=codec, audio=audio, bframes=bframes,
        )
        paths.append(path)
    return paths


def _check_fmt(fmt: str) -> str:
    if fmt not in SEGMENT_EXTENSIONS:
        raise ValueError(f"unknown segment format {fmt!r}; expected one of {sorted(MUXERS)}")
    return fmt


def _extension(fmt: str) -> str:
    return SEGMENT_EXTENSIONS[_check_fmt(fmt)]
