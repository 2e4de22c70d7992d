"""A still image of the frame shown at an instant: the last frame with pts ≤ the instant.

Synchronous PyAV: decode from the keyframe before the instant to the first frame after it.
With no options the decoded frame is converted straight to RGB (a PNG then holds exactly the
decoded pixels); with options the evidence filters (masks, crop, width, timestamp, comment)
apply first.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import av
from PIL import Image

from sense_plugin.errors import MediaError, NoRecordError
from sense_plugin.media.cutspec import SourceSegment
from sense_plugin.media.filters import FrameFilter, output_size
from sense_plugin.media.renderoptions import RenderOptions
from sense_plugin.timestamps import GAP_TOLERANCE_US, format_timestamp

US = 1_000_000
IMAGE_FORMATS = {"jpg": ("JPEG", "image/jpeg", ".jpg"), "png": ("PNG", "image/png", ".png")}
JPEG_QUALITY = 90


@dataclass(frozen=True)
class Snapshot:
    """An encoded image and the archive time of the frame it shows."""

    data: bytes
    frame_us: int
    width: int
    height: int
    content_type: str


def grab(segments: tuple[SourceSegment, ...], instant_us: int, fmt: str = "jpg",
         options: RenderOptions | None = None) -> Snapshot:
    """The frame shown at ``instant_us`` from ``segments`` as ``fmt`` (jpg|png).

    An instant in a hole shorter than the gap tolerance (not a gap: docs/evidence.rst) shows
    the last frame before it. Raises :class:`NoRecordError` when no frame at or before the
    instant lies in the segment that covers it (the instant is in a gap), :class:`MediaError`
    for unreadable files.
    """
    segment = segment_at(segments, instant_us)
    if segment is None:
        raise NoRecordError(f"nothing is recorded at {format_timestamp(instant_us)}")
    return _encode(*_read(segment, instant_us, growing=False), fmt, options)


class _Span(Protocol):
    @property
    def start_us(self) -> int: ...
    @property
    def end_us(self) -> int: ...


_S = TypeVar("_S", bound=_Span)


def segment_at(segments: Sequence[_S], instant_us: int) -> _S | None:
    """The segment showing ``instant_us``: the latest-starting one that covers it, or, in a
    hole shorter than the gap tolerance (no gap: docs/evidence.rst), the one before the hole
    (its last frame is shown there). None in a gap. ``segments`` must include those starting
    up to :data:`GAP_TOLERANCE_US` after the instant."""
    covering = [s for s in segments if s.start_us <= instant_us < s.end_us]
    if covering:
        return max(covering, key=lambda s: s.start_us)
    before = [s for s in segments if s.start_us <= instant_us]
    after = [s.start_us for s in segments if s.start_us > instant_us]
    if not before or not after:
        return None
    last = max(before, key=lambda s: s.end_us)
    return last if min(after) - last.end_us <= GAP_TOLERANCE_US else None


def grab_newest(segments: tuple[SourceSegment, ...], fmt: str = "jpg",
                options: RenderOptions | None = None) -> Snapshot:
    """The newest frame of ``segments`` (newest last; the last may be a file still being
    recorded, read up to its last complete fragment); an older one if a newer yields none."""
    failure: Exception = NoRecordError("nothing is recorded")
    for segment in reversed(segments):
        try:
            return _encode(*_read(segment, segment.end_us - 1, growing=True), fmt, options)
        except (NoRecordError, MediaError) as exc:
            failure = exc  # a segment just opened has no complete fragment yet
    raise failure


def _read(segment: SourceSegment, instant_us: int,
          growing: bool) -> tuple[av.VideoFrame, int]:
    try:
        return _frame_at(segment, instant_us, growing)
    except av.FFmpegError as exc:
        raise MediaError(f"while reading {os.path.basename(segment.path)}: {exc}") from exc
    except OSError as exc:
        raise MediaError(
            f"cannot read {os.path.basename(segment.path)}: {exc.strerror}") from exc


def _encode(frame: av.VideoFrame, frame_us: int, fmt: str,
            options: RenderOptions | None) -> Snapshot:
    pil_format, content_type, _ = IMAGE_FORMATS[fmt]
    if options is not None and options == RenderOptions(width=options.width):
        width, height = output_size(options, frame.width, frame.height)  # scale only: swscale
        image = Image.fromarray(frame.to_ndarray(format="rgb24", width=width, height=height,
                                                 interpolation="AREA"))
    else:
        if options is not None:
            frame = FrameFilter(options, frame.width, frame.height).apply(frame, frame_us)
        image = Image.fromarray(frame.to_ndarray(format="rgb24"))
    out = io.BytesIO()
    if pil_format == "JPEG":
        image.save(out, pil_format, quality=JPEG_QUALITY)
    else:
        image.save(out, pil_format, compress_level=3)
    return Snapshot(out.getvalue(), frame_us, image.width, image.height, content_type)


def _frame_at(segment: SourceSegment, instant_us: int,
              growing: bool = False) -> tuple[av.VideoFrame, int]:
    """Seek to the keyframe before the instant; where that lands after it (MPEG-TS seeks by
    dts, and a keyframe's dts lies before its pts), read the file from its top instead."""
    for seek in (True, False):
        with av.open(segment.path) as source:
            if not source.streams.video:
                raise NoRecordError(f"{os.path.basename(segment.path)} holds no video")
            video = source.streams.video[0]
            video.thread_type = "AUTO"
            tb = video.time_base
            if tb is None:
                raise MediaError(f"{os.path.basename(segment.path)}: video without a time base")
            base_us = segment.start_us - int((video.start_time or 0) * tb * US)
            if seek:
                source.seek(int((instant_us - base_us) / (tb * US)), stream=video,
                            backward=True)
            shown = _last_frame_until(source, video, base_us, instant_us, growing)
            if shown is not None:
                return shown
    raise NoRecordError(f"no frame at or before {format_timestamp(instant_us)} in "
                        f"{os.path.basename(segment.path)}")


def _last_frame_until(source: av.container.InputContainer, video: av.VideoStream,
                      base_us: int, instant_us: int,
                      growing: bool = False) -> tuple[av.VideoFrame, int] | None:
    """The last decoded frame with archive time ≤ the instant; None if the first is later.

    ``growing``: the file is being written; its unfinished tail ends the reading.
    """
    shown: tuple[av.VideoFrame, int] | None = None
    tb = video.time_base
    assert tb is not None
    try:
        for frame in source.decode(video):
            if frame.pts is None:
                continue
            frame_us = base_us + int(frame.pts * tb * US)
            if frame_us > instant_us:
                return shown
            if shown is None or frame_us >= shown[1]:
                shown = (frame, frame_us)
    except av.FFmpegError:
        if not growing or shown is None:
            raise
    return shown
