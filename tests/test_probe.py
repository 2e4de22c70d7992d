"""Probing segment files: archive start and end from name, metadata and packet timestamps."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import pytest

from sense_plugin.archive.probe import probe_segment
from sense_plugin.errors import MediaError

WriteSegment = Callable[..., Path]
#: 2026-11-20 10:00:00.123456 UTC: microseconds survive in names and metadata.
T0 = 1_795_168_800_123_456


@pytest.mark.parametrize("fmt", ["mp4", "mkv", "ts"])
def test_start_end_and_streams(tmp_path: Path, write_segment: WriteSegment, fmt: str) -> None:
    path = write_segment(tmp_path, T0, duration_s=3.0, fmt=fmt, audio=True)
    info = probe_segment(path)
    assert (info.start_us, info.end_us) == (T0, T0 + 3_000_000)
    assert info.video_codec == "h264" and info.has_audio
    assert (info.width, info.height) == (64, 64)
    assert info.packets == 30 and info.keyframes == 6
    assert info.size_bytes == path.stat().st_size


def test_b_frames_do_not_change_the_span(tmp_path: Path, write_segment: WriteSegment) -> None:
    info = probe_segment(write_segment(tmp_path, T0, duration_s=2.0, bframes=2))
    assert (info.start_us, info.end_us) == (T0, T0 + 2_000_000)


def test_creation_time_is_the_fallback(tmp_path: Path, write_segment: WriteSegment) -> None:
    path = write_segment(tmp_path, T0, duration_s=1.0, fmt="mkv")
    renamed = path.rename(tmp_path / "exported clip.mkv")
    info = probe_segment(renamed)
    assert (info.start_us, info.end_us) == (T0, T0 + 1_000_000)


def test_name_wins_over_disagreeing_metadata(tmp_path: Path, write_segment: WriteSegment,
                                             caplog: pytest.LogCaptureFixture) -> None:
    path = write_segment(tmp_path, T0, duration_s=1.0)
    named = path.rename(path.with_name(path.name.replace("T10", "T11")))  # one hour later
    with caplog.at_level(logging.WARNING):
        info = probe_segment(named)
    assert info.start_us == T0 + 3600 * 1_000_000
    assert "disagrees" in caplog.text


def test_no_start_time_at_all(tmp_path: Path, write_segment: WriteSegment) -> None:
    path = write_segment(tmp_path, T0, duration_s=1.0, fmt="ts")  # MPEG-TS has no metadata
    with pytest.raises(MediaError, match="no archive start time"):
        probe_segment(path.rename(tmp_path / "clip.ts"))


def test_concatenated_ts_has_a_sane_duration(tmp_path: Path,
                                             write_segment: WriteSegment) -> None:
    """Timestamps restart in the middle (a camera reboot): the runs add up, never negative."""
    part = write_segment(tmp_path / "src", T0, duration_s=2.0, fmt="ts")
    joined = tmp_path / part.name
    joined.write_bytes(part.read_bytes() * 2)
    info = probe_segment(joined)
    assert info.discontinuities == 1
    assert (info.start_us, info.end_us) == (T0, T0 + 4_000_000)


def _audio_only(path: Path) -> None:
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16_000, layout="mono")
        for index in range(20):
            frame = av.AudioFrame(format="fltp", layout="mono", samples=1024)
            frame.planes[0].update(bytes(4096))
            frame.sample_rate, frame.pts = 16_000, index * 1024
            frame.time_base = Fraction(1, 16_000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _truncated(source: Path, target: Path) -> None:
    target.write_bytes(source.read_bytes()[: source.stat().st_size // 2])


@pytest.mark.parametrize("kind", ["empty", "random", "truncated", "audio_only", "missing"])
def test_bad_files_raise_media_error(tmp_path: Path, write_segment: WriteSegment,
                                     kind: str) -> None:
    path = tmp_path / "20261120T100000.000000Z.mp4"
    if kind == "empty":
        path.touch()
    elif kind == "random":
        path.write_bytes(os.urandom(20_000))
    elif kind == "truncated":  # a plain MP4 keeps its index at the end
        _truncated(write_segment(tmp_path / "src", T0, duration_s=2.0), path)
    elif kind == "audio_only":
        _audio_only(path)
    with pytest.raises(MediaError):
        probe_segment(path)
