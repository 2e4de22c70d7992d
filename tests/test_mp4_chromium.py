"""An exported MP4 in headless Chromium. Served by a plain static server without Range support,
the player shows the right length (from the header); served with Range (as downloads are), it
seeks where it is told. Chromium offers no seeking at all without Range (``seekable`` is
[0, 0] whatever the file), so that half needs Range.

Footage made by ffmpeg (tests/corpus.py), 40 s exported; Debian's ``chromium`` and
``chromium-driver`` through Selenium.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import corpus
import pytest
from aiohttp import web

from sense_plugin.media.cutspec import SourceRange
from sense_plugin.media.remux import CutRequest, SourceSegment, cut
from sense_plugin.naming import parse_segment_filename

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
HINT = ("needs Debian's chromium and chromium-driver and selenium (apt-get install chromium "
        "chromium-driver; pip install -e '.[test]'), or run .ci/run")
webdriver = pytest.importorskip("selenium.webdriver", reason=HINT)
if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip(HINT, allow_module_level=True)

from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.timeout(180)
PAGE = b"<!doctype html><video id=v muted preload=auto></video>"


class StaticServer:
    """Serves the page and one file as a whole (no Accept-Ranges, no 206), in a thread."""

    def __init__(self, clip: Path) -> None:
        self.clip = clip
        self.requests: list[str | None] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/clip.mp4", self._clip)
        app.router.add_get("/ranged.mp4", self._ranged)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.ready.set()
        self.loop.run_forever()

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(body=PAGE, content_type="text/html")

    async def _clip(self, request: web.Request) -> web.Response:
        self.requests.append(request.headers.get("Range"))
        return web.Response(body=self.clip.read_bytes(), content_type="video/mp4")

    async def _ranged(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(self.clip)

    def __enter__(self) -> StaticServer:
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def export_40s(tmp_path: Path, subtitles: bool = False) -> tuple[Path, float]:
    """40 s of ffmpeg-made H.264 + AAC exported to MP4; (file, seconds of video)."""
    corpus.require_ffmpeg()
    case = corpus.Case("long-h264-aac", "h264", "aac", "mp4")
    clip = corpus.make_clip(case, tmp_path / "clip", seconds=42)
    segments = corpus.split_segments(case, clip, tmp_path / "archive")
    sources = tuple(SourceSegment(str(p), *corpus.segment_span(p, parse_segment_filename(p.name)
                                                                or 0)) for p in segments)
    out = tmp_path / "out.mp4"
    result = cut(CutRequest(SourceRange(sources, corpus.T0, corpus.T0 + 40_000_000), str(out),
                            "mp4", subtitles=subtitles), fsync=False)
    return out, result.frame_count * corpus.FRAME_US / 1e6


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Path, float]:
    return export_40s(tmp_path)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def load(driver: object, url: str) -> float:
    """Point the video at ``url``; its duration once the metadata is in."""
    driver.execute_script(  # type: ignore[attr-defined]
        f"document.getElementById('v').src = '{url}'")
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return document.getElementById('v').readyState") >= 1)
    return float(driver.execute_script(  # type: ignore[attr-defined]
        "return document.getElementById('v').duration"))


def test_chromium_shows_the_length_without_range_and_seeks_with_it(
    exported: tuple[Path, float], browser: object
) -> None:
    path, seconds = exported
    driver = browser
    with StaticServer(path) as server:
        driver.get(f"http://127.0.0.1:{server.port}/")  # type: ignore[attr-defined]
        assert abs(load(driver, "/clip.mp4") - seconds) <= 0.2
        assert server.requests and all(r is None or r == "bytes=0-" for r in server.requests)
        assert abs(load(driver, "/ranged.mp4") - seconds) <= 0.2
        driver.execute_script(  # type: ignore[attr-defined]
            "const v = document.getElementById('v'); window.seekedAt = null;"
            "v.addEventListener('seeked', () => { window.seekedAt = v.currentTime; });"
            "v.currentTime = 30.0;")
        WebDriverWait(driver, 30).until(
            lambda d: d.execute_script("return window.seekedAt") is not None)
        seeked = driver.execute_script("return window.seekedAt")  # type: ignore[attr-defined]
        assert abs(seeked - 30.0) <= 0.1, seeked
