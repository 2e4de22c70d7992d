"""Tests of the stream-copy cutter (sense_plugin.media.remux) on real synthetic archives."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import av
import pytest
from fsfull import file_size_limit

from sense_plugin import naming
from sense_plugin.errors import MediaError, NoRecordError, StorageError
from sense_plugin.media.cutspec import SourceRange
from sense_plugin.media.remux import CutCancelled, CutRequest, CutResult, Gap, SourceSegment, cut
from sense_plugin.timestamps import GAP_TOLERANCE_US

MakeSegments = Callable[..., list[Path]]
S = 1_000_000
T0 = 1_795_168_800_000_000  # 2026-11-20 10:00:00 UTC
FORMATS = ["mp4", "mkv", "ts"]
CODECS = {"mp4": "h264", "mkv": "h264", "ts": "h264"}


# -- helpers -----------------------------------------------------------------------------------


def sources(paths: Sequence[Path]) -> tuple[SourceSegment, ...]:
    """Index entries as the archive would make them: start from the name, end from the frames."""
    result = []
    for path in paths:
        start_us = naming.parse_segment_filename(path.name)
        assert start_us is not None
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            frames = sum(1 for p in container.demux(video) if p.size)
            frame_us = int(S / (video.average_rate or 10))
        result.append(SourceSegment(str(path), start_us, start_us + frames * frame_us))
    return tuple(result)


def plane_md5(frame: av.VideoFrame) -> str:
    digest = hashlib.md5()
    for plane in frame.planes:
        data, line = bytes(plane), plane.line_size
        for row in range(plane.height):
            digest.update(data[row * line : row * line + plane.width])
    return digest.hexdigest()


def archive_frames(paths: Sequence[Path]) -> dict[int, str]:
    """Archive time (µs) → md5 of the decoded picture, for every frame of the segments."""
    frames: dict[int, str] = {}
    for segment in sources(paths):
        with av.open(segment.path) as container:
            video = container.streams.video[0]
            zero = video.start_time or 0
            for frame in container.decode(video):
                assert frame.pts is not None
                at = segment.start_us + round((frame.pts - zero) * video.time_base * S)
                frames[at] = plane_md5(frame)
    return frames


def exported_frames(path: str, first_frame_us: int) -> list[tuple[int, str]]:
    """(archive time, md5) of every decoded output frame, aligning the first on its keyframe."""
    with av.open(path) as container:
        video = container.streams.video[0]
        time_base = video.time_base  # read while open: the stream is freed with the container
        assert time_base is not None
        decoded = [(f.pts, plane_md5(f)) for f in container.decode(video)]
    first_pts = decoded[0][0]
    assert first_pts is not None
    return [(first_frame_us + round((pts - first_pts) * time_base * S), md5)
            for pts, md5 in decoded if pts is not None]


def video_dts(path: str) -> list[int]:
    with av.open(path) as container:
        return [p.dts for p in container.demux(container.streams.video[0])
                if p.size and p.dts is not None]


def run_cut(tmp_path: Path, paths: Sequence[Path], start_us: int, end_us: int,
            fmt: str = "mp4", **kwargs: object) -> tuple[str, CutResult]:
    out = str(tmp_path / f"export.{fmt}")
    result = cut(CutRequest(SourceRange(sources(paths), start_us, end_us), out, fmt), **kwargs)  # type: ignore[arg-type]
    return out, result


def check_export(out: str, result: CutResult, paths: Sequence[Path], fmt: str,
                 expected_times: list[int]) -> None:
    """The output holds exactly the archive's frames at ``expected_times``, bit for bit."""
    with av.open(out) as container:
        assert container.format.name.split(",")[0] in {"mov", "matroska", "mpegts"}
        assert container.streams.video[0].codec_context.name == "h264"
    assert result.frame_count == len(expected_times)
    assert result.first_frame_us == expected_times[0]
    assert result.last_frame_us == expected_times[-1]
    archive = archive_frames(paths)
    exported = exported_frames(out, result.first_frame_us)
    assert [at for at, _ in exported] == expected_times
    assert [md5 for _, md5 in exported] == [archive[at] for at in expected_times]
    dts = video_dts(out)
    assert all(a < b for a, b in zip(dts, dts[1:], strict=False))
    assert result.size_bytes == os.path.getsize(out)
    assert result.sha256 == hashlib.sha256(Path(out).read_bytes()).hexdigest()
    assert not os.path.exists(out + ".part")


def frame_times(start_s: float, stop_s: float) -> list[int]:
    """Archive times of the 10 fps frames in [start_s, stop_s) seconds after T0."""
    return [T0 + n * 100_000 for n in range(round(start_s * 10), round(stop_s * 10))]


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def archive(make_segments: MakeSegments) -> list[Path]:
    """Three 2 s MP4 segments with audio: [T0, T0 + 6 s)."""
    return make_segments(start_us=T0, end_us=T0 + 6 * S, audio=True)


@pytest.fixture(scope="module")
def gapped(make_segments: MakeSegments) -> list[Path]:
    """[T0, T0 + 4 s) and [T0 + 6 s, T0 + 8 s): a 2 s gap in the middle."""
    return (make_segments(start_us=T0, end_us=T0 + 4 * S)
            + make_segments(start_us=T0 + 6 * S, end_us=T0 + 8 * S))


@pytest.fixture(scope="module")
def mixed(make_segments: MakeSegments) -> list[Path]:
    """MP4, then Matroska, then MPEG-TS, each 2 s with audio, contiguous."""
    return [make_segments(start_us=T0 + i * 2 * S, end_us=T0 + (i + 1) * 2 * S, fmt=fmt,
                          audio=True)[0] for i, fmt in enumerate(FORMATS)]


# -- tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_start_inside_gop_begins_at_previous_keyframe(
    tmp_path: Path, archive: list[Path], fmt: str
) -> None:
    out, result = run_cut(tmp_path, archive, T0 + 2_550_000, T0 + 4_450_000, fmt)
    check_export(out, result, archive, fmt, frame_times(2.0, 4.5))
    assert result.gaps == ()
    with av.open(out) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
        packets = sum(1 for p in container.demux(container.streams.audio[0]) if p.size)
    assert packets == result.audio_packets > 30  # 16 kHz AAC: 15.6 packets per second


def test_range_spanning_all_segments(tmp_path: Path, archive: list[Path]) -> None:
    out, result = run_cut(tmp_path, archive, T0 + 350_000, T0 + 5_050_000)
    check_export(out, result, archive, "mp4", frame_times(0.0, 5.1))


def test_gap_is_kept_and_reported(tmp_path: Path, gapped: list[Path]) -> None:
    out, result = run_cut(tmp_path, gapped, T0 + 1 * S, T0 + 7 * S, "mkv")
    check_export(out, result, gapped, "mkv", frame_times(1.0, 4.0) + frame_times(6.0, 7.0))
    assert result.gaps == (Gap(T0 + 4 * S, T0 + 6 * S),)


def test_start_in_gap_begins_at_next_keyframe(tmp_path: Path, gapped: list[Path]) -> None:
    out, result = run_cut(tmp_path, gapped, T0 + 4_500_000, T0 + 6_500_000)
    check_export(out, result, gapped, "mp4", frame_times(6.0, 6.5))
    assert result.gaps == ()


def test_gap_before_the_first_gop_is_not_reported(tmp_path: Path, gapped: list[Path]) -> None:
    """Even when an index entry overstates the end of the segment before the gap."""
    before, *after = sources(gapped)[1:]
    segments = (SourceSegment(before.path, before.start_us, T0 + 8 * S), *after)
    out = str(tmp_path / "export.mp4")
    result = cut(CutRequest(SourceRange(segments, T0 + 6_500_000, T0 + 7_500_000), out))
    check_export(out, result, gapped, "mp4", frame_times(6.0, 7.5))
    assert result.gaps == ()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("overlap_us", "step_s"), [(30_000, 0.07), (130_000, 0.1), (500_000, 0.1)],
    ids=["early", "jitter", "overlap"],
)
def test_overlapping_join_keeps_dts_increasing(
    tmp_path: Path, make_segments: MakeSegments, fmt: str, overlap_us: int, step_s: float
) -> None:
    """A segment whose dts would not increase is shifted to one frame after the last one."""
    first = make_segments(end_us=T0 + 2 * S)
    second = make_segments(start_us=T0 + 2 * S - overlap_us, end_us=T0 + 4 * S - overlap_us)
    out, result = run_cut(tmp_path, first + second, T0, T0 + 5 * S, fmt)
    # no gap at the join; the recording ends before the range: a trailing gap says so
    assert result.frame_count == 40
    assert result.gaps == (Gap(result.last_frame_us + 100_000, T0 + 5 * S),)
    dts = video_dts(out)
    assert all(a < b for a, b in zip(dts, dts[1:], strict=False))
    with av.open(out) as container:
        video = container.streams.video[0]
        times = [f.time for f in container.decode(video) if f.time is not None]
    assert len(times) == 40
    assert times[20] - times[19] == pytest.approx(step_s, abs=0.002)


def test_start_before_recording(tmp_path: Path, archive: list[Path]) -> None:
    out, result = run_cut(tmp_path, archive, T0 - 60 * S, T0 + 1 * S, "ts")
    check_export(out, result, archive, "ts", frame_times(0.0, 1.0))


@pytest.mark.parametrize("fmt", FORMATS)
def test_mixed_source_containers(tmp_path: Path, mixed: list[Path], fmt: str) -> None:
    out, result = run_cut(tmp_path, mixed, T0 + 1_500_000, T0 + 5_500_000, fmt)
    check_export(out, result, mixed, fmt, frame_times(1.0, 5.5))
    assert result.audio_packets > 50


def test_mixed_starting_with_mpegts(tmp_path: Path, make_segments: MakeSegments) -> None:
    paths = [make_segments(start_us=T0 + i * 2 * S, end_us=T0 + (i + 1) * 2 * S, fmt=fmt,
                           audio=True)[0] for i, fmt in enumerate(["ts", "mp4", "mkv"])]
    out, result = run_cut(tmp_path, paths, T0, T0 + 6 * S, "mp4")
    check_export(out, result, paths, "mp4", frame_times(0.0, 6.0))


@pytest.mark.parametrize("src_fmt", ["mkv", "mp4"])
def test_bframes_source(tmp_path: Path, make_segments: MakeSegments, src_fmt: str) -> None:
    """Matroska B-frame packets arrive without dts; none may be lost and all must decode."""
    paths = make_segments(end_us=T0 + 4 * S, fmt=src_fmt, bframes=2)
    out, result = run_cut(tmp_path, paths, T0 + 500_000, T0 + 3_500_000, "mp4")
    # Every frame up to the last one claimed is there and nothing after it: a B-run cut by
    # the end is left out with the P-frame it refers to (shown after the end), well within
    # the gap tolerance of the end (docs/evidence.rst).
    archive = archive_frames(paths)
    exported = exported_frames(out, result.first_frame_us)
    shown = [at for at, _ in exported]
    assert shown == sorted(at for at in archive
                           if result.first_frame_us <= at <= result.last_frame_us)
    assert shown[-1] == result.last_frame_us < T0 + 3_500_000
    assert T0 + 3_500_000 - result.last_frame_us <= GAP_TOLERANCE_US
    assert len(shown) == result.frame_count
    assert all(archive[at] == md5 for at, md5 in exported)


def test_long_segment_seek_with_long_gop(tmp_path: Path, make_segments: MakeSegments) -> None:
    """A start deep inside a segment seeks; it still finds the keyframe before the start."""
    paths = make_segments(end_us=T0 + 12 * S, segment_s=12, fmt="ts", gop_frames=100)
    out, result = run_cut(tmp_path, paths, T0 + 9_500_000, T0 + 11 * S, "mp4")
    check_export(out, result, paths, "mp4", frame_times(0.0, 11.0))


def test_hevc_is_tagged_hvc1(tmp_path: Path, make_segments: MakeSegments) -> None:
    paths = make_segments(end_us=T0 + 2 * S, codec="hevc")
    out, result = run_cut(tmp_path, paths, T0, T0 + 2 * S, "mp4")
    with av.open(out) as container:
        video = container.streams.video[0]
        assert (video.codec_context.name, video.codec_context.codec_tag) == ("hevc", "hvc1")
        assert sum(1 for _ in container.decode(video)) == result.frame_count == 20


@pytest.mark.parametrize(
    ("start_s", "end_s"), [(4.2, 5.8), (9.0, 10.0), (-5.0, -1.0)], ids=["gap", "after", "before"]
)
def test_no_record(tmp_path: Path, gapped: list[Path], start_s: float, end_s: float) -> None:
    with pytest.raises(NoRecordError):
        run_cut(tmp_path, gapped, T0 + int(start_s * S), T0 + int(end_s * S))
    assert list(tmp_path.iterdir()) == []


def test_progress_is_monotonic_and_complete(tmp_path: Path, archive: list[Path]) -> None:
    seen: list[tuple[int, int]] = []
    _, result = run_cut(tmp_path, archive, T0, T0 + 6 * S,
                        on_progress=lambda us, size: seen.append((us, size)),
                        progress_interval_s=0)
    assert seen == sorted(seen) and len(seen) > 2
    assert seen[-1][0] == 6 * S == result.last_frame_us + 100_000 - result.first_frame_us
    assert seen[-1][1] <= result.size_bytes


@pytest.mark.parametrize("fmt", FORMATS)
def test_cancel_leaves_no_file(tmp_path: Path, archive: list[Path], fmt: str) -> None:
    calls = iter(range(1_000_000))
    with pytest.raises(CutCancelled):
        run_cut(tmp_path, archive, T0, T0 + 6 * S, fmt, should_stop=lambda: next(calls) > 40)
    assert list(tmp_path.iterdir()) == []


def test_full_disk_is_a_storage_error(tmp_path: Path, archive: list[Path]) -> None:
    """A file size limit makes the writes fail with EFBIG, as a full disk fails them."""
    with file_size_limit(2_000), pytest.raises(StorageError):
        run_cut(tmp_path, archive, T0, T0 + 6 * S, fsync=False)
    assert list(tmp_path.iterdir()) == []


def test_missing_source_is_a_media_error(tmp_path: Path, archive: list[Path]) -> None:
    gone = SourceSegment(str(tmp_path / "gone.mp4"), T0 + 6 * S, T0 + 8 * S)
    segments = (*sources(archive), gone)
    out = str(tmp_path / "export.mp4")
    with pytest.raises(MediaError, match="gone.mp4"):
        cut(CutRequest(SourceRange(segments, T0, T0 + 8 * S), out))
    assert list(tmp_path.iterdir()) == []
