"""Probe one segment file with PyAV: codecs, archive start and end, keyframes (plain sync code).

The archive start of a segment is the archive time of its earliest video frame; it is carried by
the file name (:func:`demo.segment_filename`) and cross-checked with, or taken from, the
container's ``creation_time``. The end is the start plus the media duration measured from the
packet timestamps, so a file name alone never decides what a segment covers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av

from sense_plugin.archive.demo import parse_segment_filename
from sense_plugin.errors import MediaError
from sense_plugin.timestamps import US_PER_S, datetime_to_us

log = logging.getLogger(__name__)

#: Name and ``creation_time`` may disagree by this much (MP4 often keeps whole seconds only).
START_TOLERANCE_US = 2 * US_PER_S
#: Inside a segment, a timestamp this far behind the run so far is a discontinuity, not a
#: B-frame reordering; a jump this far ahead is one too (the run is closed and a new one begins).
BACKWARD_JUMP_US = US_PER_S
FORWARD_JUMP_US = 10 * US_PER_S
#: Frame duration assumed when neither the packets nor the stream tell one.
FALLBACK_FRAME_US = 40_000


@dataclass(frozen=True)
class SegmentInfo:
    """What a segment file holds and which archive time span ``[start_us, end_us)`` it covers."""

    path: Path
    video_codec: str
    width: int
    height: int
    has_audio: bool
    start_us: int
    end_us: int
    size_bytes: int
    keyframes: int
    packets: int
    discontinuities: int = 0


def to_us(ts: int, time_base: Fraction) -> int:
    """Stream timestamp to microseconds, in integers (floor)."""
    return ts * time_base.numerator * US_PER_S // time_base.denominator


def probe_segment(path: Path, *, name: str | None = None, fmt: str | None = None) -> SegmentInfo:
    """Read ``path`` and describe it; raise :class:`MediaError` when it is not a usable segment.

    ``name`` replaces the file name for the start time (a temporary ``.part`` file carries its
    final name inside), ``fmt`` forces the demuxer (FFmpeg names: mp4, matroska, mpegts).
    Unusable means: empty, unreadable (random bytes, truncated plain MP4), no video stream, no
    video packets, or no archive start time.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise MediaError(f"{path.name}: cannot stat: {exc.strerror}") from None
    if size == 0:
        raise MediaError(f"{path.name}: empty file")
    try:
        with av.open(str(path), format=fmt, timeout=10.0) as container:
            info = _probe_container(container, path, name or path.name, size)
    except av.FFmpegError as exc:
        raise MediaError(f"{path.name}: unreadable: {exc}") from None
    except (OSError, ValueError) as exc:
        raise MediaError(f"{path.name}: unreadable: {exc}") from None
    return info


def _probe_container(container: av.container.InputContainer, path: Path, name: str,
                     size: int) -> SegmentInfo:
    if not container.streams.video:
        raise MediaError(f"{path.name}: no video stream")
    video = container.streams.video[0]
    span = _measure(container, video, path)
    start_us = _archive_start(name, container.metadata.get("creation_time"), path)
    ctx = video.codec_context
    return SegmentInfo(
        path=path, video_codec=ctx.name, width=ctx.width, height=ctx.height,
        has_audio=bool(container.streams.audio), start_us=start_us,
        end_us=start_us + span.duration_us, size_bytes=size, keyframes=span.keyframes,
        packets=span.packets, discontinuities=span.discontinuities,
    )


@dataclass
class _Span:
    duration_us: int = 0
    keyframes: int = 0
    packets: int = 0
    discontinuities: int = 0


def _measure(container: av.container.InputContainer, video: av.VideoStream,
             path: Path) -> _Span:
    """Media duration of the video: the sum of the spans of its continuous runs.

    A normal file is one run (last pts + frame duration − first pts). Timestamps that jump
    backwards or far ahead start a new run, so they never yield a negative or absurd duration.
    """
    time_base = video.time_base or Fraction(1, 90_000)
    default_frame_us = _frame_us(video)
    span = _Span()
    run: list[int] | None = None  # [min_us, max_us, last frame duration]
    try:
        for packet in container.demux(video):
            if packet.size == 0 or packet.pts is None:
                continue
            span.packets += 1
            span.keyframes += int(packet.is_keyframe)
            pts_us = to_us(packet.pts, time_base)
            frame_us = to_us(packet.duration, time_base) if packet.duration else default_frame_us
            if run is not None and not (run[1] - BACKWARD_JUMP_US <= pts_us
                                        <= run[1] + FORWARD_JUMP_US):
                span.duration_us += run[1] + run[2] - run[0]
                span.discontinuities += 1
                run = None
            if run is None:
                run = [pts_us, pts_us, frame_us]
            elif pts_us >= run[1]:
                run[1], run[2] = pts_us, frame_us
            run[0] = min(run[0], pts_us)
    except av.FFmpegError as exc:
        if span.packets == 0:
            raise
        log.warning("%s: read stopped after %d video packets: %s", path.name, span.packets, exc)
    if run is None:
        raise MediaError(f"{path.name}: no video packets")
    span.duration_us += run[1] + run[2] - run[0]
    if span.discontinuities:
        log.warning("%s: %d timestamp discontinuities inside the segment", path.name,
                    span.discontinuities)
    return span


def _frame_us(video: av.VideoStream) -> int:
    rate = video.average_rate or video.guessed_rate
    if rate and rate > 0:
        return int(US_PER_S / rate)
    return FALLBACK_FRAME_US


def _archive_start(name: str, creation_time: str | None, path: Path) -> int:
    """Start from the file name, cross-checked with ``creation_time``, which is the fallback."""
    named_us = parse_segment_filename(name)
    meta_us = _parse_creation_time(creation_time)
    if named_us is not None:
        if meta_us is not None and abs(meta_us - named_us) > START_TOLERANCE_US:
            log.warning("%s: creation_time %s disagrees with the file name; using the name",
                        path.name, creation_time)
        return named_us
    if meta_us is not None:
        return meta_us
    raise MediaError(f"{path.name}: no archive start time (neither the file name nor "
                     f"creation_time tells when it was recorded)")


def _parse_creation_time(text: str | None) -> int | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return datetime_to_us(moment)
