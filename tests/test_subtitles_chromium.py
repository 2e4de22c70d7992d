"""An MP4 stream copy with the archive-time subtitle track still plays and seeks in Chromium.

The track makes the MP4 a plain (not fragmented) file with its index at the end
(export/remux.py); Chromium reads that index through range requests.
"""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from tests.test_mp4_chromium import StaticServer, WebDriverWait, browser, export_40s, load

__all__ = ["browser"]  # the fixture, shared with test_mp4_chromium


@pytest.fixture
def subtitled(tmp_path: Path) -> tuple[Path, float]:
    out, seconds = export_40s(tmp_path, subtitles=True)
    with av.open(str(out)) as container:
        assert container.streams.subtitles[0].codec_context.name == "mov_text"
    return out, seconds


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
