"""An MP4 stream copy with the archive-time subtitle track still plays and seeks in Chromium.

The track makes the MP4 a plain (not fragmented) file with its index at the end
(export/remux.py); Chromium reads that index through range requests.
"""

from __future__ import annotations

from pathlib import Path

import av
import corpus
import pytest

from sense_plugin.archive.demo import parse_segment_filename
from sense_plugin.export.remux import CutRequest, SourceSegment, cut
from tests.test_mp4_chromium import StaticServer, WebDriverWait, browser, load

__all__ = ["browser"]  # the fixture, shared with test_mp4_chromium


@pytest.fixture
def subtitled(tmp_path: Path) -> tuple[Path, float]:
    corpus.require_ffmpeg()
    case = corpus.Case("long-h264-aac", "h264", "aac", "mp4")
    clip = corpus.make_clip(case, tmp_path / "clip", seconds=42)
    segments = corpus.split_segments(case, clip, tmp_path / "archive")
    sources = tuple(SourceSegment(str(p), *corpus.segment_span(p, parse_segment_filename(p.name)
                                                                or 0)) for p in segments)
    out = tmp_path / "out.mp4"
    result = cut(CutRequest(sources, corpus.T0, corpus.T0 + 40_000_000, str(out), "mp4",
                            subtitles=True), fsync=False)
    with av.open(str(out)) as container:
        assert container.streams.subtitles[0].codec_context.name == "mov_text"
    return out, result.frame_count * corpus.FRAME_US / 1e6


def test_chromium_plays_and_seeks_the_mp4_with_subtitles(
        subtitled: tuple[Path, float], browser: object) -> None:
    path, seconds = subtitled
    driver = browser
    with StaticServer(path) as server:
        driver.get(f"http://127.0.0.1:{server.port}/")  # type: ignore[attr-defined]
        assert abs(load(driver, "/ranged.mp4") - seconds) <= 0.2
        driver.execute_script(  # type: ignore[attr-defined]
            "const v = document.getElementById('v'); window.seekedAt = null;"
            "v.addEventListener('seeked', () => { window.seekedAt = v.currentTime; });"
            "v.currentTime = 30.0;")
        WebDriverWait(driver, 30).until(
            lambda d: d.execute_script("return window.seekedAt") is not None)
        seeked = driver.execute_script("return window.seekedAt")  # type: ignore[attr-defined]
        assert abs(seeked - 30.0) <= 0.1, seeked
        driver.execute_script("document.getElementById('v').play()")  # type: ignore[attr-defined]
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(
            "return document.getElementById('v').currentTime") > 31.0)
