"""A fragmented MP4 cut hashed while it is written (sense_plugin.media.endplan, the sink).

The cut tells the durations its header will state from the last segment's packet timing; the
sink hashes that header ahead of the body and checks it against the header written at the end.
Whatever the guess, the digest is of the file's bytes and the file is the same.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import corpus
import pytest

from sense_plugin import naming
from sense_plugin.media import remux
from sense_plugin.media.cutspec import SourceRange
from sense_plugin.media.remux import CutRequest, CutResult, SourceSegment, cut
from sense_plugin.media.sink import HashingSink
from tests.test_remux import sources

MakeSegments = Callable[..., list[Path]]
S = 1_000_000
T0 = 1_795_168_800_000_000


@pytest.fixture
def sinks(monkeypatch: pytest.MonkeyPatch) -> list[HashingSink]:
    """Every sink the cut makes, to ask it afterwards how it got its digest."""
    made: list[HashingSink] = []

    class Recorded(HashingSink):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(remux, "HashingSink", Recorded)
    return made


def cut_to(tmp_path: Path, name: str, paths: list[Path], start_us: int, end_us: int
           ) -> tuple[Path, CutResult]:
    out = tmp_path / name
    return out, cut(CutRequest(SourceRange(sources(paths), start_us, end_us), str(out), "mp4"))


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("options", "start_s", "end_s"),
    [
        ({}, 0.0, 6.0),  # every segment, the end after the recording
        ({}, 0.35, 4.55),  # start and end inside GOPs and segments
        ({}, 2.0, 4.0),  # on segment boundaries
        ({"bframes": 2}, 0.55, 3.45),  # the end cuts a B-run
        ({"codec": "hevc", "bframes": 2}, 0.3, 5.25),
    ],
    ids=["whole", "mid-gop", "boundaries", "bframes", "hevc-bframes"],
)
def test_a_video_cut_is_hashed_while_written_and_is_the_same_file(
    tmp_path: Path, make_segments: MakeSegments, sinks: list[HashingSink],
    monkeypatch: pytest.MonkeyPatch, options: dict[str, Any], start_s: float, end_s: float,
) -> None:
    paths = make_segments(start_us=T0, end_us=T0 + 6 * S, **options)
    out, result = cut_to(tmp_path, "told.mp4", paths, T0 + int(start_s * S), T0 + int(end_s * S))
    assert not sinks[-1].read_back  # the header was told in advance, and rightly
    assert result.sha256 == file_sha256(out)
    monkeypatch.setattr(remux, "predict_header", lambda *args: None)
    plain, plain_result = cut_to(tmp_path, "plain.mp4", paths, T0 + int(start_s * S),
                                 T0 + int(end_s * S))
    assert sinks[-1].read_back
    assert out.read_bytes() == plain.read_bytes()  # the same bytes, durations included
    assert result == dataclasses.replace(plain_result, file_dev=result.file_dev,
                                         file_ino=result.file_ino)


def test_a_wrong_guess_costs_the_read_back_not_the_digest(
    tmp_path: Path, make_segments: MakeSegments, sinks: list[HashingSink],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    paths = make_segments(start_us=T0, end_us=T0 + 6 * S)
    real = remux.predict_header

    def off_by_one(*args: Any) -> bytes | None:
        told = real(*args)
        assert told is not None
        return told[:-1] + bytes([told[-1] ^ 1])  # one bit of the header wrong

    monkeypatch.setattr(remux, "predict_header", off_by_one)
    out, result = cut_to(tmp_path, "wrong.mp4", paths, T0 + 300_000, T0 + 5_500_000)
    assert sinks[-1].read_back
    assert result.sha256 == file_sha256(out)


def test_a_gap_before_the_end_and_in_the_middle(
    tmp_path: Path, make_segments: MakeSegments, sinks: list[HashingSink],
) -> None:
    """The range ends in a gap after the last recorded segment: its end is that segment's."""
    paths = (make_segments(start_us=T0, end_us=T0 + 2 * S)
             + make_segments(start_us=T0 + 3 * S, end_us=T0 + 5 * S))
    out, result = cut_to(tmp_path, "gaps.mp4", paths, T0 + 500_000, T0 + 7 * S)
    assert len(result.gaps) == 2
    assert not sinks[-1].read_back
    assert result.sha256 == file_sha256(out)


def test_copied_audio_is_told_too(
    tmp_path: Path, make_segments: MakeSegments, sinks: list[HashingSink],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    paths = make_segments(start_us=T0, end_us=T0 + 6 * S, audio=True)
    out, result = cut_to(tmp_path, "audio.mp4", paths, T0 + 200_000, T0 + 4_700_000)
    assert result.audio_packets > 0
    assert not sinks[-1].read_back
    assert result.sha256 == file_sha256(out)
    monkeypatch.setattr(remux, "predict_header", lambda *args: None)
    plain, _ = cut_to(tmp_path, "plain.mp4", paths, T0 + 200_000, T0 + 4_700_000)
    assert out.read_bytes() == plain.read_bytes()


#: Corpus footage whose end is told in advance: video with decoding times, AAC copied.
TOLD = {"h264-aac-mp4", "h264-aac-ts", "hevc-aac-mp4"}


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Corpus case name → archive segments made by the ffmpeg CLI (tests/corpus.py)."""
    corpus.require_ffmpeg()
    made = {}
    for case in corpus.CASES:
        work = tmp_path_factory.mktemp(case.name)
        made[case.name] = corpus.split_segments(case, corpus.make_clip(case, work / "clip"),
                                                work / "archive")
    return made


@pytest.mark.parametrize("case", [c.name for c in corpus.CASES])
def test_footage_made_elsewhere_gives_the_same_file_told_or_not(
    tmp_path: Path, footage: dict[str, list[Path]], sinks: list[HashingSink],
    monkeypatch: pytest.MonkeyPatch, case: str,
) -> None:
    """B-frames from x264/x265, ADTS audio from MPEG-TS, transcoded G.711/G.726, Opus, VFR:
    a guess is made where the sources allow it, and never changes a byte of the file."""
    segments = footage[case]
    indexed = []
    for path in segments:
        start = naming.parse_segment_filename(path.name)
        assert start is not None
        indexed.append(SourceSegment(str(path), *corpus.segment_span(path, start)))
    request = CutRequest(SourceRange(tuple(indexed), corpus.T0 + 700_000, corpus.T0 + 5_420_000),
                         str(tmp_path / "told.mp4"), "mp4")
    result = cut(request)
    assert sinks[-1].read_back is (case not in TOLD)
    assert result.sha256 == file_sha256(tmp_path / "told.mp4")
    monkeypatch.setattr(remux, "predict_header", lambda *args: None)
    plain = cut(dataclasses.replace(request, out_path=str(tmp_path / "plain.mp4")))
    assert (tmp_path / "told.mp4").read_bytes() == (tmp_path / "plain.mp4").read_bytes()
    assert plain.sha256 == result.sha256


def test_a_cut_that_may_be_stopped_is_told_and_a_stop_is_read_back(
    tmp_path: Path, make_segments: MakeSegments, sinks: list[HashingSink],
) -> None:
    """Export workers always pass ``should_finish`` (action=stop): a cut that is not stopped
    is hashed while written; one stopped halfway ends elsewhere than told, and is read back."""
    paths = make_segments(start_us=T0, end_us=T0 + 6 * S)
    request = CutRequest(SourceRange(sources(paths), T0 + 200_000, T0 + 5_800_000),
                         str(tmp_path / "kept.mp4"), "mp4")
    result = cut(request, should_finish=lambda: False)
    assert not sinks[-1].read_back and result.stopped_us is None
    assert result.sha256 == file_sha256(tmp_path / "kept.mp4")
    asked = iter(range(1 << 30))
    stopped = cut(dataclasses.replace(request, out_path=str(tmp_path / "stopped.mp4")),
                  should_finish=lambda: next(asked) >= 20)
    assert stopped.stopped_us is not None and stopped.frame_count < result.frame_count
    assert sinks[-1].read_back
    assert stopped.sha256 == file_sha256(tmp_path / "stopped.mp4")


def test_an_overlapping_join_before_the_end_moves_it_and_is_read_back(
    tmp_path: Path, make_segments: MakeSegments, sinks: list[HashingSink],
) -> None:
    """The last segment starts 0.5 s before the one before it ends: the cut shifts it to keep
    the decoding times increasing, so its frames end later than their archive times say."""
    first = make_segments(start_us=T0, end_us=T0 + 2 * S)
    second = make_segments(start_us=T0 + 1_500_000, end_us=T0 + 3_500_000)
    out, result = cut_to(tmp_path, "overlap.mp4", first + second, T0, T0 + 4 * S)
    assert result.frame_count == 40
    assert sinks[-1].read_back
    assert result.sha256 == file_sha256(out)


@pytest.mark.parametrize("src_fmt", ["mp4", "ts"])
def test_the_end_of_a_long_segment_is_found_by_seeking(
    tmp_path: Path, make_segments: MakeSegments, sinks: list[HashingSink], src_fmt: str,
) -> None:
    """Only the end of a long last segment is read for the guess (a seek near the end)."""
    paths = make_segments(start_us=T0, end_us=T0 + 12 * S, segment_s=12, fmt=src_fmt)
    out, result = cut_to(tmp_path, "long.mp4", paths, T0 + 1_000_000, T0 + 11_550_000)
    assert not sinks[-1].read_back
    assert result.sha256 == file_sha256(out)
