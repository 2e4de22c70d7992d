"""Probe one segment file with PyAV: codecs, archive start and end, keyframes (plain sync code).

The archive start of a segment is the archive time of its earliest video frame; it is carried by
the file name (``archive_pattern``, see :mod:`naming`) and refined by, or taken from, the
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

from sense_plugin.archive.dst import pass_by_mtime
from sense_plugin.errors import MediaError
from sense_plugin.naming import DEFAULT_PATTERN, NameTime, compiled
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
    #: For a name in a repeated DST hour that nothing in the file settles: the start under
    #: the other pass (``start_us`` is the first pass); the scanner decides by continuity.
    alt_start_us: int | None = None


def to_us(ts: int, time_base: Fraction) -> int:
    """Stream timestamp to microseconds, in integers (floor)."""
    return ts * time_base.numerator * US_PER_S // time_base.denominator


def probe_segment(path: Path, *, name: str | None = None, fmt: str | None = None,
                  named: NameTime | None = None, mtime_ns: int | None = None) -> SegmentInfo:
    """Read ``path`` and describe it; raise :class:`MediaError` when it is not a usable segment.

    ``named`` is the start its name gives under the device's ``archive_pattern``; without it
    ``name`` (default: the file name) is read in today's naming (a temporary ``.part`` file
    carries its final name inside). ``mtime_ns`` settles a name in a repeated DST hour when
    the container has no start time of its own. ``fmt`` forces the demuxer (FFmpeg names:
    mp4, matroska, mpegts). Unusable means: empty, unreadable (random bytes, truncated plain
    MP4), no video stream, no video packets, or no archive start time.
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
            if named is None:
                named = compiled(DEFAULT_PATTERN).parse(name or path.name)
            info = _probe_container(container, path, named, size, mtime_ns)
    except av.FFmpegError as exc:
        raise MediaError(f"{path.name}: unreadable: {exc}") from None
    except (OSError, ValueError) as exc:
        raise MediaError(f"{path.name}: unreadable: {exc}") from None
    return info


def _probe_container(container: av.container.InputContainer, path: Path,
                     named: NameTime | None, size: int, mtime_ns: int | None) -> SegmentInfo:
    if not container.streams.video:
        raise MediaError(f"{path.name}: no video stream")
    video = container.streams.video[0]
    span = _measure(container, video, path)
    meta_us = _parse_creation_time(container.metadata.get("creation_time"))
    start_us = archive_start(named, meta_us, path, span.duration_us, mtime_ns)
    alt_us = None
    if named is not None and named.alt_us is not None \
            and _settle_fold(named, meta_us, span.duration_us, mtime_ns) is None:
        alt_us = named.alt_us  # unsettled: the scanner decides by continuity
    ctx = video.codec_context
    return SegmentInfo(
        path=path, video_codec=ctx.name, width=ctx.width, height=ctx.height,
        has_audio=bool(container.streams.audio), start_us=start_us,
        end_us=start_us + span.duration_us, size_bytes=size, keyframes=span.keyframes,
        packets=span.packets, discontinuities=span.discontinuities, alt_start_us=alt_us,
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


def archive_start(named: NameTime | None, meta_us: int | None, path: Path, duration_us: int,
                  mtime_ns: int | None = None) -> int:
    """The segment's start: the name's, refined by ``creation_time`` where the name is coarser.

    A name in the repeated hour of a DST change (``named.alt_us``) is settled by the container's
    start time, else by the file's mtime when it lies near the end of one pass (written when
    the segment ended), else it is the first pass for now (:mod:`dst` decides by continuity).
    """
    if named is None:
        if meta_us is not None:
            return meta_us
        raise MediaError(f"{path.name}: no archive start time (neither the file name nor "
                         f"creation_time tells when it was recorded)")
    start_us = _settle_fold(named, meta_us, duration_us, mtime_ns)
    start_us = named.start_us if start_us is None else start_us
    if meta_us is None:
        return start_us
    if start_us <= meta_us < start_us + named.precision_us:
        return meta_us  # the container is more precise than the name and agrees with it
    if abs(meta_us - start_us) > START_TOLERANCE_US + named.precision_us:
        log.warning("%s: creation_time disagrees with the file name by %.1f s; using the name",
                    path.name, (meta_us - start_us) / US_PER_S)
    return start_us


def _settle_fold(named: NameTime, meta_us: int | None, duration_us: int,
                 mtime_ns: int | None) -> int | None:
    """The start the container or the mtime settles, or None when neither does."""
    if named.alt_us is None:
        return named.start_us
    candidates = (named.start_us, named.alt_us)
    slack_us = START_TOLERANCE_US + named.precision_us
    if meta_us is not None:
        best = min(candidates, key=lambda c: abs(meta_us - c))
        if abs(meta_us - best) <= slack_us:
            return best
    return pass_by_mtime(named.start_us, named.alt_us, duration_us, mtime_ns)


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
