"""Opening a cut's later segments from the MP4 header alone: nothing is decoded, every fact the
cut reads of a later segment is what the full probe gives, other containers are still probed,
and a cut writes the same bytes as with every segment fully probed."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import av
import pytest
from ffmpegtools import ffmpeg

from sense_plugin.media import bitstream as bs
from sense_plugin.media import cutter
from sense_plugin.media.cutspec import SourceRange
from sense_plugin.media.remux import CutRequest, SourceSegment, cut
from sense_plugin.media.sourceopen import open_source

S = 1_000_000
T0 = 1_795_168_800_000_000
#: 3 s at 25 fps, B-frames, AAC: the kind of segment whose probe decodes a frame.
_CLIP = ["-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=3", "-f", "lavfi", "-i",
         "sine=duration=3:sample_rate=16000", "-c:v", "libx264", "-bf", "2", "-g", "25",
         "-preset", "ultrafast", "-c:a", "aac", "-shortest"]


def _clip(path: Path, *extra: str) -> Path:
    subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", *_CLIP, *extra,
                    str(path)], check=True, timeout=60)
    return path


def _facts(source: av.container.InputContainer) -> tuple[object, ...]:
    """What the cut reads of a later segment (media/cutter.py, media/outputs.py)."""
    video = source.streams.video[0]
    audio = source.streams.audio[0]
    return (bs.params(video), bs.frame_us(video), bs.timing(video, video, T0),
            bs.timing(audio, video, T0), bs.length_prefixed(video),
            bytes(video.codec_context.extradata or b""), video.time_base, video.start_time,
            audio.codec_context.name, audio.codec_context.sample_rate,
            audio.codec_context.channels, bytes(audio.codec_context.extradata or b""),
            bs.is_adts(audio))


@pytest.mark.parametrize("layout", [
    ("-map", "0:v", "-map", "1:a"),
    ("-map", "1:a", "-map", "0:v"),  # audio as the first stream
    ("-map", "0:v", "-map", "1:a", "-movflags", "frag_keyframe+empty_moov"),
], ids=["mp4", "audio-first", "fragmented"])
def test_a_later_mp4_segment_is_read_from_its_header_without_decoding(
        tmp_path: Path, layout: tuple[str, ...]) -> None:
    path = str(_clip(tmp_path / "seg.mp4", *layout))
    with av.open(path) as probed, open_source(path, header_only=True) as light:
        assert probed.streams.video[0].codec_context.format is not None  # a frame decoded
        assert light.streams.video[0].codec_context.format is None  # none decoded
        assert _facts(light) == _facts(probed)
        assert [s.type for s in light.streams] == [s.type for s in probed.streams]


def test_the_first_segment_and_other_containers_are_probed(tmp_path: Path) -> None:
    mp4 = str(_clip(tmp_path / "seg.mp4"))
    ts_named_mp4 = str(_clip(tmp_path / "ts.mp4", "-f", "mpegts"))  # an extension that lies
    ts = str(_clip(tmp_path / "seg.ts"))
    for path, header_only in ((mp4, False), (ts_named_mp4, True), (ts, True)):
        with open_source(path, header_only=header_only) as source:
            assert source.streams.video[0].codec_context.format is not None, path
            assert len(source.streams.audio) == 1, path


@pytest.mark.parametrize("fmt", ["mp4", "ts"])
def test_a_cut_writes_the_same_bytes_as_with_every_segment_probed(
        tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sources = [_clip(tmp_path / f"seg{i}.mp4", "-metadata", f"title={i}") for i in range(3)]
    segments = tuple(SourceSegment(str(p), T0 + i * 3 * S, T0 + (i + 1) * 3 * S)
                     for i, p in enumerate(sources))
    request = CutRequest(SourceRange(segments, T0 + S, T0 + 8 * S),
                         str(tmp_path / f"light.{fmt}"), fmt=fmt)
    light = cut(request, fsync=False)
    monkeypatch.setattr(cutter, "open_source",
                        lambda path, header_only: open_source(path, header_only=False))
    probed = cut(dataclasses.replace(request, out_path=str(tmp_path / f"probed.{fmt}")),
                 fsync=False)
    assert light.frame_count == probed.frame_count > 150
    assert light.sha256 == probed.sha256
    assert (tmp_path / f"light.{fmt}").read_bytes() == (tmp_path / f"probed.{fmt}").read_bytes()
