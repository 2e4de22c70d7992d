"""The recorder keeps every audio stream a camera sends: footage made by ffmpeg (corpus.py).

G.711 (µ-law, A-law) and G.726 are carried by no segment format of the bundled FFmpeg and
are recorded as AAC; Opus and AAC are copied. Audio must run without holes across the joins
of the segments the recorder cuts (late audio goes to the segment it belongs to).
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from pathlib import Path

import corpus
import pytest

from sense_plugin.archive.recorder import BACKOFF_MAX_S, Recorder
from sense_plugin.media.cutspec import SourceRange
from sense_plugin.media.remux import CutRequest, SourceSegment, cut

CASES = {c.name: c for c in corpus.CASES}
#: source case → codec the segments must hold
EXPECTED = {"h264-pcmu-mkv": "aac", "h264-g726-mkv": "aac", "h264-opus-mkv": "opus",
            "h264-aac-mp4": "aac"}


def record(clips: dict[str, Path], root: Path, segments: int) -> dict[str, list[Path]]:
    """Record every clip (a file source, paced at real time) until it closed ``segments``."""
    done: dict[str, list[Path]] = {name: [] for name in clips}
    recorders = {name: Recorder(str(clip), root / name, segment_s=1.0,
                                on_segment=done[name].append, name=name)
                 for name, clip in clips.items()}
    threads = [threading.Thread(target=r.run, daemon=True) for r in recorders.values()]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while any(len(v) < segments for v in done.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    for recorder in recorders.values():
        recorder.stop()
    for thread in threads:
        thread.join(10)
    return done


def test_every_audio_codec_is_recorded_without_holes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    corpus.require_ffmpeg()
    clips = {name: corpus.make_clip(CASES[name], tmp_path / "src" / name) for name in EXPECTED}
    with caplog.at_level(logging.INFO, logger="sense_plugin.archive.recorder"):
        recorded = record(clips, tmp_path / "archive", segments=3)
    notes = [r.getMessage() for r in caplog.records]
    assert sum("pcm_mulaw is recorded as AAC" in m for m in notes) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    for name, paths in recorded.items():
        assert len(paths) >= 3, name
        for path in paths:
            assert corpus.probe_codec(path, "v") == "h264", path
            assert corpus.probe_codec(path, "a") == EXPECTED[name], (name, path)
        # audio follows on from segment to segment: nothing lost at the recorder's joins
        audio = sorted(corpus.archive_packets(sorted(paths), "a"), key=lambda item: item[0])
        holes = [b[0] - (a[0] + a[1].duration_us) for a, b in zip(audio, audio[1:],
                                                                     strict=False)]
        assert max(holes) <= 2_000, (name, sorted(holes)[-3:])
        video = corpus.archive_packets(sorted(paths), "v")
        span = max(t for t, _ in video) - min(t for t, _ in video)
        total = sum(p.duration_us for _, p in audio)
        # stopping the recorder mid-interleave may leave up to 0.2 s of audio unread at the end
        assert total >= span - 200_000, (name, total, span)
        assert min(t for t, _ in audio) - min(t for t, _ in video) <= corpus.FRAME_US


def test_reconnect_backoff_caps_at_a_few_seconds() -> None:
    recorder = Recorder("rtsp://127.0.0.1:9/none", Path("/nonexistent"), segment_s=1.0,
                        on_segment=lambda _: None)
    assert recorder.backoff[1] == BACKOFF_MAX_S <= 5.0


def test_an_unknown_audio_codec_is_dropped_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """ffmpeg's experimental "sonic" audio has no decoder in the bundled FFmpeg: the camera is
    recorded without it (one WARNING), and the footage still exports."""
    corpus.require_ffmpeg()
    clip = tmp_path / "sonic.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=160x90:rate=25", "-f", "lavfi", "-i", "sine=sample_rate=8000",
                    "-t", "6", "-c:v", "libx264", "-g", "25", "-preset", "ultrafast",
                    "-c:a", "sonic", "-strict", "-2", "-ar", "8000", "-ac", "1", str(clip)],
                   check=True, capture_output=True, timeout=60)
    with caplog.at_level(logging.INFO, logger="sense_plugin.archive.recorder"):
        recorded = record({"sonic": clip}, tmp_path / "archive", segments=2)["sonic"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "cannot be recorded" in warnings[0], warnings
    assert len(recorded) >= 2
    for path in recorded:
        assert corpus.probe_codec(path, "v") == "h264" and corpus.probe_codec(path, "a") == ""
    # an archive file holding such a stream (the clip itself) exports as video only
    start = corpus.T0
    source = SourceSegment(str(clip), start, start + 6_000_000)
    out = tmp_path / "out.mp4"
    result = cut(CutRequest(SourceRange((source,), start, start + 3_000_000), str(out), "mp4"),
                 fsync=False)
    assert result.frame_count == 75 and result.audio_packets == 0
