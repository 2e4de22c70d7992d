"""Exports of footage made by ffmpeg (tests/corpus.py), checked against ffprobe's view of it.

Every exported frame and audio packet is decoded; the frames must be exactly those whose
presentation time lies in [start keyframe, endtime) of the archive; audio must cover the same
range without holes, in sync with the video.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import corpus
import pytest
from oracle import Claim, check_file

from sense_plugin.media.cutspec import SourceRange
from sense_plugin.media.remux import CutRequest, CutResult, SourceSegment, cut

FORMATS = ("mp4", "mkv", "ts")
#: A range that starts inside a GOP, crosses two segment joins and ends between B-frames.
START_US = corpus.T0 + 1_300_000
END_US = corpus.T0 + 4_620_000
COPYABLE = {"mp4": {"aac", "opus"}, "mkv": {"aac", "opus"}, "ts": {"aac", "opus"}}


@dataclass(frozen=True)
class Footage:
    """One corpus case as the archive holds it, with ffprobe's truth about the test range."""

    sources: tuple[SourceSegment, ...]
    truth: corpus.Truth
    audio_codec: str


@pytest.fixture(scope="session")
def footage(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Footage]:
    """Case name → its archive segments and truth, made once per session."""
    from sense_plugin.naming import parse_segment_filename

    corpus.require_ffmpeg()
    made: dict[str, Footage] = {}
    for case in corpus.CASES:
        work = tmp_path_factory.mktemp(case.name)
        clip = corpus.make_clip(case, work / "clip")
        segments = corpus.split_segments(case, clip, work / "archive")
        sources = []
        for path in segments:
            start = parse_segment_filename(path.name)
            assert start is not None
            sources.append(SourceSegment(str(path), *corpus.segment_span(path, start)))
        made[case.name] = Footage(tuple(sources), corpus.truth(segments, START_US, END_US),
                                  corpus.probe_codec(segments[0], "a"))
    return made


def export(item: Footage, out: Path, fmt: str) -> CutResult:
    return cut(CutRequest(SourceRange(item.sources, START_US, END_US), str(out), fmt), fsync=False)


@dataclass
class Decoded:
    video_us: list[int]  # output pts of every decoded picture (µs)
    video_dts: list[int]
    audio: list[tuple[int, int]]  # (pts µs, duration µs) of every decoded audio frame
    audio_codec: str
    errors: int


def decode_all(path: Path) -> Decoded:
    """Decode every video and audio packet of ``path`` with PyAV; count decoding errors."""
    result = Decoded([], [], [], "", 0)
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        result.audio_codec = audio.codec_context.name if audio is not None else ""
        for packet in container.demux(*container.streams.video, *container.streams.audio):
            if packet.stream is video and packet.size and packet.dts is not None:
                result.video_dts.append(round(packet.dts * packet.time_base * 1_000_000))
            try:
                frames = packet.decode()
            except av.FFmpegError:
                result.errors += 1
                continue
            for frame in frames:
                assert frame.pts is not None and frame.time_base is not None
                at = round(frame.pts * frame.time_base * 1_000_000)
                if packet.stream is video:
                    result.video_us.append(at)
                else:
                    rate = frame.sample_rate
                    result.audio.append((at, frame.samples * 1_000_000 // rate))
    result.video_us.sort()
    return result


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", [c.name for c in corpus.CASES])
def test_export_holds_every_frame_and_all_audio(
    footage: dict[str, Footage], tmp_path: Path, case: str, fmt: str
) -> None:
    item = footage[case]
    truth = item.truth
    out = tmp_path / f"out.{fmt}"
    result = export(item, out, fmt)
    check_file(out, Claim.of_result(result), requested=(START_US, END_US))
    got = decode_all(out)
    assert got.errors == 0
    # video: exactly the archive's frames in [start keyframe, endtime), all decodable
    zero = got.video_us[0]
    shown = [truth.start_key_us + t - zero for t in got.video_us
             if t - zero < END_US - truth.start_key_us]
    assert [round(t / 1000) for t in shown] == [round(t / 1000) for t in truth.frames_us]
    assert result.frame_count == len(truth.frames_us)
    assert result.first_frame_us == truth.start_key_us
    assert result.last_frame_us == truth.frames_us[-1]
    assert all(b > a for a, b in zip(got.video_dts, got.video_dts[1:], strict=False))
    # audio: kept (copied or AAC), no holes, the whole range, in sync
    source_codec = item.audio_codec
    expected = source_codec if source_codec in COPYABLE[fmt] else "aac"
    assert got.audio_codec == expected
    audio = sorted(got.audio)
    holes = [b[0] - (a[0] + a[1]) for a, b in zip(audio, audio[1:], strict=False)]
    assert max(holes) <= 2_000, f"audio holes {sorted(holes)[-3:]} µs"
    first_us = truth.start_key_us + audio[0][0] - zero
    end_us = truth.start_key_us + audio[-1][0] + audio[-1][1] - zero
    assert abs(first_us - truth.audio_first_us) <= corpus.FRAME_US + 130_000
    # AAC made here ends on a whole 1024-sample frame (padding included)
    aac_frame_us = 1024 * 1_000_000 // 8000 if expected != source_codec else 0
    assert abs(end_us - truth.audio_last_end_us) <= corpus.FRAME_US + aac_frame_us


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_metadata(footage: dict[str, Footage], tmp_path: Path, fmt: str) -> None:
    """creation_time = archive time of the first frame, title and comment as requested."""
    item = footage["h264-pcmu-mkv"]
    out = tmp_path / f"out.{fmt}"
    cut(CutRequest(SourceRange(item.sources, START_US, END_US), str(out), fmt, title="Entrance",
                   comment="export 42 Night shift"), fsync=False)
    with av.open(str(out)) as container:
        metadata = {k.lower(): v for k, v in container.metadata.items()}
    if fmt == "ts":  # MPEG-TS has no such tags: nothing to check but that the file plays
        return
    assert metadata["title"] == "Entrance"
    assert metadata["comment"] == "export 42 Night shift"
    assert metadata["creation_time"].startswith("2026-11-20T10:00:01.000000")


@pytest.mark.parametrize("case", ["h264-aac-mp4", "hevc-aac-mp4", "h264-pcmu-mkv"])
def test_mp4_header_states_the_duration(footage: dict[str, Footage], tmp_path: Path,
                                        case: str) -> None:
    """Read from the header alone (ffprobe on the first bytes, through a pipe: no seeking, no
    fragments), the length is the file's; the SHA-256 is of the final bytes."""
    import hashlib
    import subprocess

    out = tmp_path / "out.mp4"
    result = export(footage[case], out, "mp4")
    data = out.read_bytes()
    assert result.sha256 == hashlib.sha256(data).hexdigest() and result.size_bytes == len(data)
    moof = data.find(b"moof") - 4
    assert 0 < moof < 8192
    def probed_duration(data: bytes) -> float:
        done = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
             "-i", "pipe:0"], input=data, capture_output=True, timeout=30, check=False)
        return float(done.stdout.decode().strip() or "0")

    # the header alone says what ffprobe finds in the whole file (which adds the audio's start
    # offset, less than a frame, that it cannot know without the first fragment)
    assert abs(probed_duration(data[:moof]) - probed_duration(data)) * 1e6 < corpus.FRAME_US
    assert probed_duration(data) >= result.frame_count * corpus.FRAME_US / 1e6
    assert decode_all(out).errors == 0
    assert b"mehd" in data[:moof]


def test_a_missing_segment_after_the_end_costs_nothing(footage: dict[str, Footage],
                                                       tmp_path: Path) -> None:
    """The segment after the end is read only for audio muxed ahead of its video; when it is
    gone (retention), the export still completes with every frame of the range."""
    item = footage["h264-aac-ts"]
    end_us = corpus.T0 + 3_950_000
    gone = SourceSegment(str(tmp_path / "deleted.ts"), item.sources[2].start_us,
                         item.sources[2].end_us)
    sources = (*item.sources[:2], gone)
    result = cut(CutRequest(SourceRange(sources, START_US, end_us), str(tmp_path / "out.mp4"),
                            "mp4"), fsync=False)
    assert result.frame_count == len(corpus.truth(
        [Path(s.path) for s in item.sources], START_US, end_us).frames_us)
