"""End to end in a real headless Chromium: log in, export two cameras, download, cancel, page.

Uses Debian's ``chromium`` and ``chromium-driver`` through Selenium (never a downloaded browser).
Screenshots of every page are saved under ``tests/artifacts/web/`` (git-ignored).
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import pytest
from aiohttp import web
from conftest import API_DEVICES
from lxml import etree

from sense_plugin.api.app import create_app
from sense_plugin.passwords import hash_password

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
INSTALL_HINT = ("Chromium is not installed; install it with "
                "`sudo apt-get update && sudo apt-get install -y chromium chromium-driver` "
                "(and `pip install -e '.[test]'` for selenium) to run the browser test")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "web"
USER, PASSWORD = "operator", "correct horse"
WAIT_S = 30.0

webdriver = pytest.importorskip("selenium.webdriver", reason=INSTALL_HINT)
if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip(INSTALL_HINT, allow_module_level=True)

from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.timeout(180)


class ThreadServer:
    """``create_app(config)`` on a loopback port, run by its own event loop in a thread.

    Selenium calls block, so the server cannot share the test's thread.
    """

    def __init__(self, config: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(create_app(config))
        self.port = 0
        self.thread = threading.Thread(target=self.loop.run_forever, name="web-test-server")

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(60)
        return self

    async def _start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, query: str, body: str | None = None) -> etree._Element:
        """A command sent like a script would (HTTP Basic), answer checked for errorcode 0."""
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        request = urllib.request.Request(f"{self.url}/command?command={query}",
                                         data=body.encode() if body else None,
                                         headers={"Authorization": f"Basic {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            root = etree.fromstring(response.read())
        assert root.get("errorcode") == "0", etree.tostring(root).decode()
        return root


@pytest.fixture
def server(make_config: Callable[..., Any]) -> Iterator[ThreadServer]:
    config = make_config(auth={"enabled": True, "users": [
        {"name": USER, "password_hash": hash_password(PASSWORD),
         "permissions": ["view", "export"]}]})
    with ThreadServer(config) as running:
        yield running
        # The slow exports would otherwise run on into the shutdown.
        unfinished = running.command("getExportVideoStatus&status=PENDING,SYNCING")
        for export_id in unfinished.xpath("exports/export/exportid/text()"):
            running.command(f"exportVideo&action=remove&exportid={export_id}")


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    directory = tmp_path / "downloads"
    directory.mkdir()
    return directory


@pytest.fixture
def browser(tmp_path: Path, downloads: Path) -> Iterator[WebDriver]:
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                 "--window-size=1280,1000"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads), "download.prompt_for_download": False,
        "profile.default_content_setting_values.automatic_downloads": 1,
    })
    # An explicit driver path keeps Selenium Manager from looking for (or fetching) a browser.
    # A time zone other than UTC shows the local time beside each UTC input in the screenshots.
    service = Service(CHROMEDRIVER, env={**os.environ, "TZ": "Europe/Berlin"})
    driver = webdriver.Chrome(service=service, options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(downloads)})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: WebDriver, condition: Callable[[WebDriver], Any], what: str) -> Any:
    """Wait for ``condition``; on timeout keep a screenshot and the browser log for the report."""
    try:
        return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(condition, message=what)
    except Exception:
        shot(driver, "failure")
        for entry in driver.get_log("browser"):
            print("browser:", entry)
        raise


def element(driver: WebDriver, css: str) -> Any:
    return driver.find_element(By.CSS_SELECTOR, css)


def click(driver: WebDriver, css: str, what: str) -> None:
    """Click ``css`` once it exists, again if polling replaced it under the cursor."""
    def attempt(d: WebDriver) -> bool:
        try:
            element(d, css).click()
        except (StaleElementReferenceException, NoSuchElementException):
            return False
        return True

    wait(driver, attempt, what)


def history_rows(driver: WebDriver) -> list[dict[str, str]]:
    """The rows of the history table, read in one go (polling re-renders the table)."""
    return driver.execute_script(  # type: ignore[no-any-return]
        "return Array.from(document.querySelectorAll('#history-rows tr'), (tr) =>"
        " ({id: tr.dataset.exportid, status: tr.dataset.status, text: tr.innerText}));")


def row_status(driver: WebDriver, export_id: str) -> str:
    return next((r["status"] for r in history_rows(driver) if r["id"] == export_id), "")


def shot(driver: WebDriver, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def slow_export_body(device_id: int, start: str, end: str) -> str:
    """A capped export that stays busy for minutes, to keep the workers occupied."""
    return (f"<export><devices><device><deviceid>{device_id}</deviceid><starttime>{start}"
            f"</starttime><endtime>{end}</endtime></device></devices>"
            f"<bandwidth>16</bandwidth><name>slow</name></export>")


def test_log_in_export_download_cancel_and_page(server: ThreadServer, browser: WebDriver,
                                               downloads: Path) -> None:
    driver = browser
    driver.get(server.url + "/")
    assert driver.current_url == server.url + "/web/"

    # Log in: a wrong password shows the server's description, the right one opens the page.
    wait(driver, lambda d: element(d, "#login-view").is_displayed(), "login form")
    element(driver, "#login-user").send_keys(USER)
    element(driver, "#login-password").send_keys("wrong")
    element(driver, "#login-submit").click()
    wait(driver, lambda d: "invalid user name or password" in element(d, "#login-error").text,
         "login error shown")
    shot(driver, "1-login")
    element(driver, "#login-password").send_keys(PASSWORD)
    element(driver, "#login-password").send_keys("\n")  # Enter submits the form
    wait(driver, lambda d: element(d, "#export-view").is_displayed(), "export page")

    # Export page: Start stays disabled until a camera is selected.
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#cameras input")) == 4,
         "camera list")
    assert not element(driver, "#start-export").is_enabled()
    assert not element(driver, f"#cam-{API_DEVICES['Off']}").is_enabled()
    element(driver, f"#cam-{API_DEVICES['Steady']}").click()
    element(driver, f"label[for='cam-{API_DEVICES['Matroska']}']").click()  # labels work too
    assert element(driver, "#start-export").is_enabled()
    start_text = element(driver, "#start").get_attribute("value")
    end_text = element(driver, "#end").get_attribute("value")
    assert start_text and end_text, "the range defaults to the last recorded minute"
    assert "local:" in element(driver, "#start-local").text
    wait(driver, lambda d: "in the chosen range 60 s recorded" in element(d, "#recorded").text,
         "recorded range of the selected cameras")

    # A span over the maximum is refused in the page, and nothing is sent.
    element(driver, "#start").clear()
    element(driver, "#start").send_keys("2020-01-01 00:00:00")
    element(driver, "#start-export").click()
    assert "at most" in element(driver, "#export-error").text
    assert server.command("getExportVideoStatus").find("exports").get("count") == "0"
    element(driver, "#start").clear()
    element(driver, "#start").send_keys(start_text)
    wait(driver, lambda d: "60 s recorded" in element(d, "#recorded").text, "range fixed")
    assert not element(driver, "#export-error").text
    element(driver, "#name").send_keys("Two cameras")
    shot(driver, "2-export")
    element(driver, "#start-export").click()
    wait(driver, lambda d: "started" in element(d, "#export-message").text, "export started")
    first_id = server.command("getExportVideoStatus").findtext("exports/export/exportid")

    # History: the export completes and its two files download by themselves.
    element(driver, "#nav-history").click()
    wait(driver, lambda d: row_status(d, first_id) == "COMPLETED", "first export COMPLETED")
    files = wait(driver, lambda d: _finished_downloads(downloads, 2), "two automatic downloads")
    names = sorted(p.name for p in files)
    assert names[0].startswith("Matroska_") and names[1].startswith("Steady_"), names
    _check_clip(files[0])
    row = next(r for r in history_rows(driver) if r["id"] == first_id)
    assert "Steady" in row["text"] and "Matroska" in row["text"] and names[1] in row["text"]
    assert element(driver, f"button[data-key='download-{first_id}']").is_displayed()
    shot(driver, "3-history-completed")

    # Keep both workers busy with slow exports, so the next one from the page stays PENDING.
    gappy, start, end = API_DEVICES["Gappy"], start_text, end_text
    for _ in range(11):
        server.command("exportVideo", slow_export_body(gappy, start, end))
    element(driver, "#nav-export").click()
    element(driver, "#start-export").click()
    wait(driver, lambda d: "started" in element(d, "#export-message").text, "second export")
    second_id = server.command("getExportVideoStatus&limit=1").findtext("exports/export/exportid")
    element(driver, "#nav-history").click()
    wait(driver, lambda d: row_status(d, second_id) in ("PENDING", "SYNCING"), "second is queued")
    shot(driver, "4-history-running")
    click(driver, f"button[data-key='cancel-{second_id}']", "Cancel")
    wait(driver, lambda d: row_status(d, second_id) == "REMOVED", "second export cancelled")
    assert element(driver, f"button[data-key='retry-{second_id}']").is_displayed()

    # 13 exports: page 1 shows the newest 10, page 2 the oldest 3 (the completed one last).
    rows = history_rows(driver)
    assert len(rows) == 10 and rows[0]["id"] == second_id
    assert not element(driver, "#page-prev").is_enabled()
    click(driver, "#page-next", "Older page")
    wait(driver, lambda d: element(d, "#page-label").text == "Page 2", "page 2")
    wait(driver, lambda d: len(history_rows(d)) == 3, "three rows on page 2")
    assert history_rows(driver)[-1]["id"] == first_id
    assert not element(driver, "#page-next").is_enabled()
    shot(driver, "5-history-page2")
    click(driver, "#page-prev", "Newer page")
    wait(driver, lambda d: element(d, "#page-label").text == "Page 1", "back to page 1")

    # Narrow screen: the same history as one card per export.
    driver.set_window_size(400, 900)
    wait(driver, lambda d: element(d, "#history thead").location["x"] < 0, "narrow layout")
    shot(driver, "6-history-narrow")
    assert len(list(downloads.iterdir())) == 2, "no download besides the completed export's"


def _finished_downloads(directory: Path, count: int) -> list[Path] | None:
    files = sorted(directory.iterdir())
    if len(files) == count and not any(p.suffix == ".crdownload" for p in files):
        time.sleep(0.2)  # Chromium renames on completion; let the size settle
        return files
    return None


def _check_clip(path: Path) -> None:
    """The downloaded file is a real one-minute H.264 clip (10 fps test media)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = sum(1 for _ in container.demux(stream) if _.size)
    assert 590 <= frames <= 620, frames
