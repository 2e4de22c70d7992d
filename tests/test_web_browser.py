"""End to end in a real headless Chromium, as an operator would use the page (docs/page.rst hooks).

Log in, tick two cameras, move both timeline handles with the keyboard and the mouse, see the
preview load for the handle's time, start an export, watch per-camera progress to COMPLETED,
download both files and the manifest with a default profile (one click each), cancel (with its
confirmation), retry, delete, and page the history.

Uses Debian's ``chromium`` and ``chromium-driver`` through Selenium (never a downloaded browser).
Full-page screenshots of each step at 1400x1000 and 390x844 go to ``tests/artifacts/web/``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import threading
import time
import urllib.parse
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
#: A span limit short enough to see on the "Last hour" axis.
MAX_SPAN_S = 1800

webdriver = pytest.importorskip("selenium.webdriver", reason=INSTALL_HINT)
if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip(INSTALL_HINT, allow_module_level=True)

from selenium.common.exceptions import (  # noqa: E402
    ElementNotInteractableException,
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.timeout(180)
SIZES = {"wide": (1400, 1000), "phone": (390, 844)}


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
         "permissions": ["view", "export"]}]}, export={"max_span_s": MAX_SPAN_S})
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
    """Headless Chromium with a default profile: only where downloads go is set."""
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads), "download.prompt_for_download": False})
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
        return WebDriverWait(driver, WAIT_S, poll_frequency=0.05).until(condition, message=what)
    except Exception:
        driver.save_screenshot(str(ARTIFACTS / "failure.png"))
        for entry in driver.get_log("browser"):
            print("browser:", entry)
        print("last preview state:", LAST_PREVIEW)
        raise


def element(driver: WebDriver, css: str) -> Any:
    return driver.find_element(By.CSS_SELECTOR, css)


def js(driver: WebDriver, script: str, *args: Any) -> Any:
    return driver.execute_script(script, *args)


def click(driver: WebDriver, css: str, what: str) -> None:
    """Click ``css`` once it exists, again if polling replaced it under the cursor."""
    def attempt(d: WebDriver) -> bool:
        try:
            element(d, css).click()
        except (StaleElementReferenceException, NoSuchElementException,
                ElementNotInteractableException):
            return False
        return True

    wait(driver, attempt, what)


def history_rows(driver: WebDriver) -> list[dict[str, str]]:
    """The rows of the history table, read in one go (polling re-renders the table)."""
    return js(driver,  # type: ignore[no-any-return]
              "return Array.from(document.querySelectorAll('#history-rows tr'), (tr) =>"
              " ({id: tr.dataset.exportid, status: tr.dataset.status, text: tr.innerText}));")


def row_status(driver: WebDriver, export_id: str) -> str:
    return next((r["status"] for r in history_rows(driver) if r["id"] == export_id), "")


def shots(driver: WebDriver, name: str) -> None:
    """Full-page screenshots of the current state at both sizes (phone: mobile emulation).

    Taken from the top of the page: the sticky preview would otherwise be drawn where the
    current scroll position holds it.
    """
    scroll = js(driver, "const y = window.scrollY; window.scrollTo(0, 0); return y;")
    for size, (width, height) in SIZES.items():
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500})
        time.sleep(0.15)  # the timeline redraws on resize
        shot = driver.execute_cdp_cmd("Page.captureScreenshot",
                                      {"format": "png", "captureBeyondViewport": True})
        (ARTIFACTS / f"{name}-{size}.png").write_bytes(base64.b64decode(shot["data"]))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    js(driver, "window.scrollTo(0, arguments[0])", scroll)


def slider(driver: WebDriver, label: str) -> Any:
    return element(driver, f"[role=slider][aria-label={label}]")


def value(driver: WebDriver, label: str) -> int:
    return int(slider(driver, label).get_attribute("aria-valuenow"))


def wire(ms: int) -> str:
    """The page's UTC wire form of epoch milliseconds."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}"


def fields_follow(driver: WebDriver) -> None:
    start, end = value(driver, "Start"), value(driver, "End")
    assert start < end
    assert element(driver, "#start").get_attribute("value") == wire(start)
    assert element(driver, "#end").get_attribute("value") == wire(end)


LAST_PREVIEW: list[Any] = []


def preview_shows(driver: WebDriver, label: str) -> Callable[[WebDriver], bool]:
    """The preview's image has loaded, for the handle's time and a frame at or before it."""
    def check(d: WebDriver) -> bool:
        state = js(d, "const p = document.querySelector('[aria-label=Preview]');"
                      "const img = p.querySelector('img');"
                      "return {time: p.dataset.time, w: img.naturalWidth, done: img.complete,"
                      " hidden: img.hidden, frame: img.dataset.frameTime || ''};")
        handle = value(d, label)
        LAST_PREVIEW[:] = [state, handle]
        return (state["time"] == str(handle) and state["done"] and state["w"] > 0
                and not state["hidden"] and state["frame"][:19] <= wire(handle)[:19])
    return check


def log_in(driver: WebDriver, server: ThreadServer) -> None:
    driver.get(server.url + "/")
    assert driver.current_url == server.url + "/web/"
    wait(driver, lambda d: element(d, "#login-view").is_displayed(), "login form")
    assert not element(driver, "#nav").is_displayed(), "no page links before logging in"
    element(driver, "#login-user").send_keys(USER)
    element(driver, "#login-password").send_keys("wrong\n")
    wait(driver, lambda d: "invalid user name or password" in element(d, "#login-error").text,
         "login error shown")
    shots(driver, "1-login")
    element(driver, "#login-password").send_keys(PASSWORD + "\n")
    wait(driver, lambda d: element(d, "#export-view").is_displayed(), "export page")
    # The fields take local time by default; this story types and reads UTC.
    js(driver, "const z = document.getElementById('zone'); z.value = 'utc';"
               " z.dispatchEvent(new Event('change'));")


def pick_cameras(driver: WebDriver, api_archive: dict[str, Any]) -> None:
    """Tick two cameras inside [aria-label=Cameras]; the range is their last recorded minute."""
    boxes = "[aria-label=Cameras] input[type=checkbox]"
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, boxes)) == 4, "camera list")
    assert not element(driver, "#start-export").is_enabled()
    assert not element(driver, f"#cam-{API_DEVICES['Off']}").is_enabled()
    end_ms = api_archive["end_us"] // 1000
    assert element(driver, "#end").get_attribute("placeholder") == wire(end_ms)
    element(driver, f"#cam-{API_DEVICES['Steady']}").click()
    element(driver, f"label[for='cam-{API_DEVICES['Matroska']}']").click()  # labels work too
    assert element(driver, "#start-export").is_enabled()
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".tl-bar .tl-rec")) == 2,
         "one recorded interval per ticked camera on the timeline")
    # The last recorded minute, from 1 ms after the (truncated) first recorded time.
    assert value(driver, "Start") == end_ms - 60_000 + 1 and value(driver, "End") == end_ms
    fields_follow(driver)
    # A camera with a hole: its lane shows two recorded intervals around the 20 s gap.
    element(driver, f"#cam-{API_DEVICES['Gappy']}").click()
    gappy = f".tl-bar[data-deviceid='{API_DEVICES['Gappy']}'] .tl-rec"
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, gappy)) == 2, "Gappy's gap")
    wait(driver, lambda d: "Gappy: 40 s recorded, 1 gap (20 s)" in element(d, "#recorded").text,
         "Gappy's gap in the summary")
    # Gappy's picture in its gap: the preview says where recording ends and resumes (-9).
    element(driver, ".tl-name[title='Preview Gappy']").click()
    start_text = element(driver, "#start").get_attribute("value")
    element(driver, "#start").clear()
    element(driver, "#start").send_keys(wire(api_archive["start_us"] // 1000 + 30_000))
    wait(driver, lambda d: "resumes at" in element(d, "#preview-note").text, "-9 in the gap")
    assert not element(driver, "#preview-img").is_displayed()
    shots(driver, "2a-gap")
    element(driver, "#start").clear()
    element(driver, "#start").send_keys(start_text)
    element(driver, f"#cam-{API_DEVICES['Gappy']}").click()
    wait(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, gappy), "Gappy's lane gone")
    # "Last recorded 10 minutes" on a one-minute archive: the recorded minute, no false gap.
    element(driver, "#last-ten").click()
    wait(driver, lambda d: "Steady: 60 s recorded, no gaps" in element(d, "#recorded").text,
         "the range is the whole recording")
    assert value(driver, "Start") == api_archive["start_us"] // 1000 + 1  # see fillLastRecorded
    # Milliseconds survive the round trip through the fields (the old page truncated them).
    assert js(driver, "return TimeUtil.formatUtc(TimeUtil.parseUtc('2026-11-20 00:31:56.226'))"
              ) == "2026-11-20 00:31:56.226"
    wait(driver, preview_shows(driver, "Start"), "preview at Start (the first handle)")


def move_handles_with_keys(driver: WebDriver) -> None:
    start, end = value(driver, "Start"), value(driver, "End")
    slider(driver, "Start").send_keys(Keys.ARROW_RIGHT * 3)
    assert value(driver, "Start") == start + 3000
    assert end - start == 59_999
    slider(driver, "Start").send_keys(Keys.PAGE_UP)
    assert value(driver, "Start") == end - 1000, "Start stays before End"
    slider(driver, "Start").send_keys(Keys.PAGE_DOWN, Keys.ARROW_LEFT)
    start = end - 1000 - 60_000 - 1000
    assert value(driver, "Start") == start
    slider(driver, "End").send_keys(Keys.ARROW_LEFT * 4)
    end -= 4000
    assert value(driver, "End") == end
    fields_follow(driver)
    wait(driver, preview_shows(driver, "End"), "preview follows the End handle")


def move_handles_with_mouse(driver: WebDriver) -> None:
    start, end = value(driver, "Start"), value(driver, "End")
    width = element(driver, ".tl-track").size["width"]
    actions = ActionChains(driver, duration=20)
    knob = element(driver, ".tl-start .tl-knob")
    actions.click_and_hold(knob).move_by_offset(width // 20, 0).move_by_offset(width // 20, 0)
    actions.release().perform()
    assert value(driver, "Start") > start + 1000, (start, value(driver, "Start"))
    wait(driver, preview_shows(driver, "Start"), "preview at the dragged Start")
    # A long drag: the preview follows without flooding (one request in flight, >= 150 ms apart).
    before = js(driver, "return [state.preview.requests, performance.now()]")
    knob = element(driver, ".tl-end .tl-knob")
    actions = ActionChains(driver, duration=15).click_and_hold(knob)
    for _ in range(30):
        actions.move_by_offset(-width // 300, 0)
    actions.release().perform()
    wait(driver, preview_shows(driver, "End"), "preview at the dragged End")
    after = js(driver, "return [state.preview.requests, performance.now()]")
    assert value(driver, "End") < end - 1000
    fields_follow(driver)
    print(f"drag: {after[0] - before[0]} snapshot requests in {after[1] - before[1]:.0f} ms")
    assert after[0] - before[0] <= (after[1] - before[1]) / 150 + 2, (before, after)
    touch_drag(driver, "start", width // 25)
    assert value(driver, "Start") > start + 1000
    fields_follow(driver)
    wait(driver, preview_shows(driver, "Start"), "preview at the touched Start")


def options_become_spec_elements(driver: WebDriver) -> None:
    """The Options section builds the extended export elements (docs/exports.rst,
    docs/rendering.rst); with the defaults the request is a plain exportVideo one."""
    plain = etree.fromstring(js(driver, "return new XMLSerializer().serializeToString("
                                        "ExportForm.build(['1']))"))
    assert [c.tag for c in plain] == ["devices", "format"], etree.tostring(plain)
    for css in ("#audio", "#burn-time", "#subtitle-time"):
        element(driver, css).click()
    for css, text in (("#maxfilesize", "5"), ("#comment", "Case 4711"), ("#width", "320")):
        element(driver, css).clear()
        element(driver, css).send_keys(text)
    js(driver, "document.getElementById('mode').value = 'live'")
    doc = etree.fromstring(js(driver, "return new XMLSerializer().serializeToString("
                                      "ExportForm.build(['1']))"))
    assert doc.findtext("mode") == "live" and doc.find("devices/device/endtime") is None
    assert doc.findtext("audio") == "false" and doc.findtext("maxfilesize") == "5"
    assert doc.findtext("render/timestamp/format") == "%Y-%m-%d %H:%M:%S.%f"
    assert doc.findtext("render/comment/text") == "Case 4711"
    assert doc.findtext("render/width") == "320" and doc.findtext("timestamps") == "subtitle"
    js(driver, "document.getElementById('mode').value = 'archive'")
    for css in ("#audio", "#burn-time", "#subtitle-time"):
        element(driver, css).click()
    for css, text in (("#maxfilesize", "0"), ("#comment", ""), ("#width", "")):
        element(driver, css).clear()
        element(driver, css).send_keys(text)

    # A mask drawn on the preview by dragging becomes <render><mask> (relative, inside 0..1).
    element(driver, "#mask-draw").click()
    layer = element(driver, ".mask-layer")
    js(driver, "arguments[0].scrollIntoView({block: 'center'})", layer)
    size = layer.size
    ActionChains(driver, duration=20).move_to_element_with_offset(
        layer, -size["width"] // 4, -size["height"] // 4).click_and_hold() \
        .move_by_offset(size["width"] // 3, size["height"] // 5).release().perform()
    element(driver, "#mask-draw").click()
    assert len(driver.find_elements(By.CSS_SELECTOR, "#mask-list li")) == 1
    shots(driver, "2c-mask")
    doc = etree.fromstring(js(driver, "return new XMLSerializer().serializeToString("
                                      "ExportForm.build(['1'],"
                                      " new Map([['1', state.masks.masks]])))"))
    x, y, w, h = (float(doc.findtext(f"devices/device/render/mask/{k}")) for k in "xywh")
    assert abs(x - 0.25) < 0.02 and abs(y - 0.25) < 0.02, (x, y)
    assert abs(w - 1 / 3) < 0.02 and abs(h - 0.2) < 0.02, (w, h)
    assert doc.findtext("devices/device/render/mask/style") == "solid"
    element(driver, "#mask-list button").click()
    assert not driver.find_elements(By.CSS_SELECTOR, "#mask-list li")


def span_limit_on_the_axis(driver: WebDriver) -> None:
    """The span limit from getServerOptions is drawn on the axis and enforced by the form."""
    element(driver, "#zoom-hour").click()
    marks = wait(driver, lambda d: [e.text for e in d.find_elements(
        By.CSS_SELECTOR, ".tl-limit:not([hidden])")], "span limit on the axis")
    assert "← max 30 min" in marks, marks
    wait(driver, lambda d: js(d, "const t = document.getElementById('timeline');"
                                 "return t.dataset.loaded === t.dataset.view"), "lanes loaded")
    shots(driver, "2b-span-limit")
    good_start = element(driver, "#start").get_attribute("value")
    element(driver, "#start").clear()
    element(driver, "#start").send_keys(wire(value(driver, "End") - 3_600_000))
    assert "over-limit" in element(driver, ".tl-sel").get_attribute("class")
    element(driver, "#start-export").click()
    assert "at most 30 min" in element(driver, "#export-error").text
    element(driver, "#start").clear()
    element(driver, "#start").send_keys(good_start)
    element(driver, "#zoom-fit").click()
    assert "over-limit" not in element(driver, ".tl-sel").get_attribute("class")


def touch_drag(driver: WebDriver, which: str, dx: int) -> None:
    """Drag a handle's knob with a finger (CDP touch events: pointerType "touch")."""
    before = value(driver, which.title())
    box = js(driver, f"const r = document.querySelector('.tl-{which} .tl-knob')"
                     ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2];")
    x, y = box
    send = driver.execute_cdp_cmd
    send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    for step in range(1, 6):
        send("Input.dispatchTouchEvent",
             {"type": "touchMove", "touchPoints": [{"x": x + dx * step / 5, "y": y}]})
    send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    moved = value(driver, which.title()) - before
    assert moved > 0 if dx > 0 else moved < 0, moved


def slow_export_body(device_id: int, start: str, end: str) -> str:
    """A capped export that stays busy for minutes."""
    return (f"<export><devices><device><deviceid>{device_id}</deviceid><starttime>{start}"
            f"</starttime><endtime>{end}</endtime></device></devices>"
            f"<bandwidth>16</bandwidth><name>slow</name></export>")


def test_timeline_preview_export_downloads_cancel_delete(
        server: ThreadServer, browser: WebDriver, downloads: Path,
        api_archive: dict[str, Any]) -> None:
    driver = browser
    log_in(driver, server)
    pick_cameras(driver, api_archive)
    move_handles_with_keys(driver)
    move_handles_with_mouse(driver)
    shots(driver, "2-timeline")
    span_limit_on_the_axis(driver)

    # Every invalid field is marked at once, and nothing is sent.
    good_start = element(driver, "#start").get_attribute("value")
    element(driver, "#options summary").click()
    element(driver, "#start").clear()
    element(driver, "#start").send_keys("yesterday")
    element(driver, "#bandwidth").clear()
    element(driver, "#bandwidth").send_keys("fast")
    element(driver, "#start-export").click()
    invalid = js(driver, "return Array.from(document.querySelectorAll('[aria-invalid=true]'),"
                         " (e) => e.id)")
    assert set(invalid) == {"start", "bandwidth"}, invalid
    assert len(driver.find_elements(By.CSS_SELECTOR, "#export-error li")) == 2
    shots(driver, "3-invalid")
    assert server.command("getExportVideoStatus").find("exports").get("count") == "0"

    element(driver, "#start").clear()
    element(driver, "#start").send_keys(good_start)
    options_become_spec_elements(driver)

    # A capped export of both cameras: per-camera progress under the form, to COMPLETED.
    element(driver, "#bandwidth").clear()
    element(driver, "#bandwidth").send_keys("1200")
    element(driver, "#name").send_keys("Two cameras")
    element(driver, "#start-export").click()
    wait(driver, lambda d: "started" in element(d, "#export-message").text, "export started")
    export_id = server.command("getExportVideoStatus").findtext("exports/export/exportid")
    card = f"#current [data-exportid='{export_id}']"
    def card_info(d: WebDriver) -> dict[str, Any]:
        return js(d, "const c = document.querySelector(arguments[0]);"  # type: ignore[no-any-return]
                     "return c ? {status: c.dataset.status, text: c.innerText,"
                     " devs: Array.from(c.querySelectorAll('.dev'), (e) =>"
                     " [e.dataset.status, e.dataset.progress])}"
                     " : {status: '', text: '', devs: []};", card)

    def progressing(d: WebDriver) -> bool:
        info = card_info(d)
        return (any(s == "SYNCING" and 0 < int(p) < 100 for s, p in info["devs"])
                and "left" in info["text"] and "kbit/s" in info["text"])

    wait(driver, progressing, "per-camera progress with size, rate and ETA")
    shots(driver, "4-progress")
    wait(driver, lambda d: card_info(d)["status"] == "COMPLETED", "export COMPLETED")
    statuses = card_info(driver)["devs"]
    assert statuses == [["COMPLETED", "100"], ["COMPLETED", "100"]], statuses

    # Default profile: one click per file, each arrives; the manifest too.
    status = server.command(f"getExportVideoStatus&exportid={export_id}")
    sizes = {f.findtext("name"): int(f.findtext("size"))
             for f in status.iterfind("exports/export/devices/device/files/file")}
    assert len(sizes) == 2
    for name in [*sizes, "manifest.xml"]:
        click(driver, f"{card} a[data-file='{name}']", f"download {name}")
        wait(driver, lambda d, n=name: _downloaded(downloads, n), f"{name} downloaded")
    for name, size in sizes.items():
        assert (downloads / name).stat().st_size == size
    _check_clip(downloads / next(n for n in sizes if n.startswith("Matroska_")))
    manifest = etree.parse(str(downloads / "manifest.xml")).getroot()
    assert manifest.findtext("exportid") == export_id
    assert {f.findtext("name"): int(f.findtext("size"))
            for f in manifest.iterfind("devices/device/file")} == sizes
    shots(driver, "5-completed")

    history_story(driver, server, export_id, sizes, api_archive)


def history_story(driver: WebDriver, server: ThreadServer, export_id: str,
                  sizes: dict[str, int], api_archive: dict[str, Any]) -> None:
    """History: the whole story, Cancel with confirmation, Retry from #N, Delete, stable columns."""
    start, end = (wire(api_archive[k] // 1000) for k in ("start_us", "end_us"))
    slow = server.command("exportVideo", slow_export_body(API_DEVICES["Gappy"], start, end))
    slow_id = slow.findtext("exportid")
    element(driver, "#nav-history").click()
    wait(driver, lambda d: row_status(d, slow_id) == "SYNCING", "slow export running")
    row = next(r for r in history_rows(driver) if r["id"] == export_id)
    assert all(n in row["text"].replace("\n", "") for n in sizes), row["text"]
    assert "manifest.xml" in row["text"] and "files kept until" in row["text"]
    widths = js(driver, "return Array.from(document.querySelectorAll('#history th'),"
                        " (th) => th.offsetWidth)")
    time.sleep(2.2)  # two refreshes of the running row
    assert js(driver, "return Array.from(document.querySelectorAll('#history th'),"
                      " (th) => th.offsetWidth)") == widths, "columns keep their widths"
    shots(driver, "6-history-running")

    # Cancel asks first; "No" keeps it, "Yes, cancel" removes it.
    click(driver, f"#history-rows button[data-key='cancel-{slow_id}']", "Cancel")
    confirm = f"#history-rows button[data-key='confirm-{slow_id}']"
    wait(driver, lambda d: element(d, confirm).is_displayed(), "the confirmation")
    wait(driver, lambda d: js(d, "return document.activeElement.dataset.key")
         == f"confirm-{slow_id}", "the question has the keyboard focus")
    shots(driver, "7-confirm-cancel")
    click(driver, f"#history-rows button[data-key='keep-{slow_id}']", "No")
    time.sleep(1.2)
    assert row_status(driver, slow_id) == "SYNCING"
    click(driver, f"#history-rows button[data-key='cancel-{slow_id}']", "Cancel")
    click(driver, f"#history-rows button[data-key='confirm-{slow_id}']", "Yes, cancel")
    wait(driver, lambda d: row_status(d, slow_id) == "", "a cancelled export leaves the list")

    # Retry (among the deleted and cancelled) says where it came from; Delete of the completed
    # export (confirmed) removes its files and its row.
    set_filter(driver, "filter-status", "REMOVED")
    wait(driver, lambda d: row_status(d, slow_id) == "REMOVED", "cancelled, when asked for")
    click(driver, f"#history-rows button[data-key='retry-{slow_id}']", "Retry")
    set_filter(driver, "filter-status", "")
    wait(driver, lambda d: f"retried from #{slow_id}" in history_rows(d)[0]["text"],
         "retried from #N")
    retry_id = history_rows(driver)[0]["id"]
    # A press held while the running retry above is redrawn still asks its question.
    press_across_a_redraw(driver, f"#history-rows button[data-key='delete-{export_id}']")
    wait(driver, lambda d: element(d, f"#history-rows button[data-key='confirm-{export_id}']")
         .is_displayed(), "the question asked across a redraw")
    click(driver, f"#history-rows button[data-key='keep-{export_id}']", "No")
    click(driver, f"#history-rows button[data-key='cancel-{retry_id}']", "Cancel the retry")
    click(driver, f"#history-rows button[data-key='confirm-{retry_id}']", "Yes, cancel the retry")
    # the cancelled row leaves the list and the rows below move up: a click aimed before that
    # lands beside its button (a press across a redraw is tested above)
    wait(driver, lambda d: row_status(d, retry_id) == "", "retry cancelled")
    click(driver, f"#history-rows button[data-key='delete-{export_id}']", "Delete")
    click(driver, f"#history-rows button[data-key='confirm-{export_id}']", "Yes, delete")
    wait(driver, lambda d: row_status(d, export_id) == "", "completed export deleted")
    shots(driver, "8-history-final")

    # 12 exports made elsewhere (the page polls nothing once all it shows has finished: it
    # sees them when opened again): page 1 shows the newest 10, page 2 the oldest 2.
    made = [server.command("exportVideo", slow_export_body(API_DEVICES["Gappy"], start, end))
            .findtext("exportid") for _ in range(12)]
    driver.refresh()
    wait(driver, lambda d: len(history_rows(d)) == 10, "a full first page")
    assert not element(driver, "#page-prev").is_enabled()
    click(driver, "#page-next", "Older page")
    wait(driver, lambda d: element(d, "#page-label").text == "Page 2", "page 2")
    wait(driver, lambda d: [r["id"] for r in history_rows(d)] == made[1::-1],
         "the two oldest on page 2")
    assert not element(driver, "#page-next").is_enabled()
    click(driver, "#page-prev", "Newer page")
    wait(driver, lambda d: element(d, "#page-label").text == "Page 1", "back to page 1")


def press_across_a_redraw(driver: WebDriver, css: str) -> None:
    """Press ``css``, hold it until the history has been redrawn or has held a redraw back (the
    1 s refresh of a running export), then release: the click must still reach the button. A
    button replaced between the press and the release loses it."""
    js(driver, "window.redraws = 0; new MutationObserver(() => { window.redraws += 1; })"
               ".observe(document.getElementById('history-rows'),"
               " {childList: true, subtree: true});")
    ActionChains(driver).move_to_element(element(driver, css)).click_and_hold().perform()
    wait(driver, lambda d: js(d, "return window.redraws > 0 || document.getElementById("
                              "'history-rows').getAttribute('aria-busy') === 'true'"),
         "a redraw while pressed")
    ActionChains(driver).release().perform()


def set_filter(driver: WebDriver, field: str, value: str) -> None:
    js(driver, "const f = document.getElementById(arguments[0]); f.value = arguments[1];"
               " f.dispatchEvent(new Event('input'));", field, value)


def _downloaded(directory: Path, name: str) -> bool:
    busy = any(p.suffix == ".crdownload" for p in directory.iterdir())
    return (directory / name).exists() and not busy


def _check_clip(path: Path) -> None:
    """The downloaded file is a real H.264 clip (10 fps test media) of about the range."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = sum(1 for _ in container.demux(stream) if _.size)
    assert 300 <= frames <= 620, frames
