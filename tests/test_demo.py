"""Tests of the synthetic archive generator (sense_plugin.archive.demo)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av
import pytest

from sense_plugin import naming
from sense_plugin.archive import demo
from sense_plugin.timestamps import parse_timestamp

T0_US = parse_timestamp("2026-11-20 10:00:00")
SMALL = {"width": 64, "height": 64, "fps": 10, "gop_frames": 10}


def video_packets(path: Path) -> list[av.Packet]:
    with av.open(str(path)) as container:
        return [p for p in container.demux(container.streams.video[0]) if p.size]


@pytest.mark.parametrize("fmt", ["mp4", "mkv", "ts"])
@pytest.mark.parametrize("start_us", [T0_US, T0_US + 123_456, 0, T0_US + 86_399_999_999])
def test_segment_names_round_trip(fmt: str, start_us: int) -> None:
    name = naming.segment_filename(start_us, fmt)
    assert name.endswith(naming.SEGMENT_EXTENSIONS[fmt])
    assert naming.parse_segment_filename(name) == start_us


def test_segment_name_form() -> None:
    assert naming.segment_filename(T0_US + 500_000, "mp4") == "20261120T100000.500000Z.mp4"


@pytest.mark.parametrize(
    "name",
    ["20261120T100000.000000Z.avi", "20261120T100000Z.mp4", "x20261120T100000.000000Z.mp4",
     "20261320T100000.000000Z.mp4", ".20261120T100000.000000Z.mp4.123.part", "index.db", ""],
)
def test_parse_rejects_other_names(name: str) -> None:
    assert naming.parse_segment_filename(name) is None


@pytest.mark.parametrize("fmt", ["mp4", "mkv", "ts"])
def test_keyframe_interval_and_duration(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / naming.segment_filename(T0_US, fmt)
    demo.write_segment(path, start_us=T0_US, duration_s=3.5, fmt=fmt, gop_frames=7, **{
        k: v for k, v in SMALL.items() if k != "gop_frames"})
    packets = video_packets(path)
    assert len(packets) == 35
    assert [i for i, p in enumerate(packets) if p.is_keyframe] == list(range(0, 35, 7))
    pts = sorted(p.pts for p in packets if p.pts is not None)
    time_base = packets[0].time_base
    span_us = (pts[-1] - pts[0]) * time_base * 1_000_000
    assert span_us == pytest.approx(3_400_000, abs=1_000)
    assert not list(tmp_path.glob(".*")), "temporary file left behind"


@pytest.mark.parametrize("fmt", ["mp4", "mkv"])
def test_creation_time_metadata_keeps_microseconds(tmp_path: Path, fmt: str) -> None:
    start_us = T0_US + 123_456
    path = tmp_path / naming.segment_filename(start_us, fmt)
    demo.write_segment(path, start_us=start_us, duration_s=0.5, fmt=fmt, **SMALL)
    with av.open(str(path)) as container:
        text = container.metadata["creation_time"]
    assert parse_timestamp(text.replace("T", " ").rstrip("Z")) == start_us


@pytest.mark.parametrize("fmt", ["mp4", "mkv", "ts"])
def test_audio_track_when_asked(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / naming.segment_filename(T0_US, fmt)
    demo.write_segment(path, start_us=T0_US, duration_s=2, fmt=fmt, audio=True, **SMALL)
    with av.open(str(path)) as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        assert audio.codec_context.sample_rate == 16_000
        samples = sum(f.samples for f in container.decode(audio))
    assert samples == pytest.approx(32_000, abs=2048)  # TS keeps the AAC priming


def test_no_audio_by_default(make_segments: Callable[..., list[Path]]) -> None:
    with av.open(str(make_segments()[0])) as container:
        assert not container.streams.audio


def test_hevc_segment(tmp_path: Path) -> None:
    path = tmp_path / naming.segment_filename(T0_US, "mp4")
    demo.write_segment(path, start_us=T0_US, duration_s=2, codec="hevc", **SMALL)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "hevc"
        assert stream.codec_context.codec_tag == "hvc1"
    assert [i for i, p in enumerate(video_packets(path)) if p.is_keyframe] == [0, 10]


def test_bframes(tmp_path: Path) -> None:
    path = tmp_path / naming.segment_filename(T0_US, "mkv")
    demo.write_segment(path, start_us=T0_US, duration_s=2, fmt="mkv", bframes=2, **SMALL)
    packets = video_packets(path)
    assert len(packets) == 20
    assert any(p.pts != p.dts for p in packets)


def test_generate_device_segments(make_segments: Callable[..., list[Path]]) -> None:
    paths = make_segments(start_us=T0_US, end_us=T0_US + 5_050_000, segment_s=2.0)
    starts = [naming.parse_segment_filename(p.name) for p in paths]
    assert starts == [T0_US, T0_US + 2_000_000, T0_US + 4_000_000]
    counts = [len(video_packets(p)) for p in paths]
    assert counts == [20, 20, 11]  # frames at 0.0 ... 5.0 s are before end_us
    assert all(video_packets(p)[0].is_keyframe for p in paths)


def test_burned_in_clock(tmp_path: Path) -> None:
    """The clock rows of each decoded frame match that frame's rendering, not the next one's."""
    path = tmp_path / "clock.mp4"
    demo.write_segment(path, start_us=T0_US, duration_s=0.3, width=320, height=180,
                       bitrate_bps=1_000_000)
    painter = demo.Painter(320, 180, "CAM")
    with av.open(str(path)) as container:
        decoded = [clock_band(f, painter.clock_rows) for f in container.decode(video=0)]
    rendered = [clock_band(painter.frame(i, T0_US + i * 100_000), painter.clock_rows)
                for i in range(3)]
    assert len(decoded) == 3
    assert rendered[0] != rendered[1] != rendered[2]
    for i in range(2):
        assert distance(decoded[i], rendered[i]) * 4 < distance(decoded[i], rendered[i + 1])


def clock_band(frame: av.VideoFrame, rows: range) -> bytes:
    plane = frame.planes[0]
    data = bytes(plane)
    return b"".join(data[y * plane.line_size : y * plane.line_size + frame.width] for y in rows)


def distance(a: bytes, b: bytes) -> int:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True))
