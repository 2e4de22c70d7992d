# ruff: noqa: F811  (the fixtures imported from test_web_browser are the tests' parameters)
"""Playback and history on the page in Chromium: play the chosen range of the camera clicked
last and a finished file (the video's time advances, the archive time of the frame is shown),
draw a mask on one of two cameras (it goes into that camera's <device><render> only), choose
the burned-in time's position and size, Download all, filter the history, sign out. And quiet:
what an idle tab asks of the server in a minute (virtual time in the page).

Screenshots at 1400x1000 and 390x844 go to ``tests/artifacts/web/`` (``play-*``).
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from conftest import API_DEVICES
from lxml import etree
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from test_web_browser import (  # noqa: F401  (pytest fixtures)
    PASSWORD,
    USER,
    ThreadServer,
    browser,
    click,
    downloads,
    element,
    js,
    server,
    shots,
    wait,
)

from sense_plugin.api import accesslog
from sense_plugin.timestamps import format_timestamp, parse_timestamp

pytestmark = pytest.mark.timeout(240)
STEADY, MATROSKA = API_DEVICES["Steady"], API_DEVICES["Matroska"]
#: Every request body the page sends (exportVideo), recorded by a wrapper around fetch.
RECORD_BODIES = ("window.sentBodies = []; const plain = window.fetch;"
                 "window.fetch = (url, init) => { if (init && init.body)"
                 " window.sentBodies.push(init.body); return plain(url, init); };")


def sign_in(driver: WebDriver, server: ThreadServer) -> None:
    driver.get(server.url + "/web/")
    wait(driver, lambda d: element(d, "#login-view").is_displayed(), "login form")
    assert not element(driver, "[aria-label='Sign out']").is_displayed()
    element(driver, "#login-user").send_keys(USER)
    element(driver, "#login-password").send_keys(PASSWORD + "\n")
    wait(driver, lambda d: element(d, "#export-view").is_displayed(), "export page")


def tick_two_cameras(driver: WebDriver) -> None:
    boxes = "[aria-label=Cameras] input[type=checkbox]"
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, boxes)) == 4, "camera list")
    element(driver, f"#cam-{STEADY}").click()
    element(driver, f"#cam-{MATROSKA}").click()
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".tl-bar .tl-rec")) == 2,
         "both cameras on the timeline")
    wait(driver, lambda d: js(d, "const i = document.getElementById('preview-img');"
                                 "return i.complete && i.naturalWidth > 0 && !i.hidden"),
         "the first camera's picture")


def video_state(driver: WebDriver, css: str) -> dict[str, Any]:
    return js(driver, "const v = document.querySelector(arguments[0]);"  # type: ignore[no-any-return]
                      "return {t: v.currentTime, src: v.currentSrc, hidden: v.hidden,"
                      " error: v.error && v.error.code, frame: v.dataset.frameTime || ''};", css)


def play_the_range(driver: WebDriver) -> None:
    """The camera whose name was clicked last plays from the keyframe at or before Start; the
    archive time of the shown frame stands beside the video and follows it."""
    element(driver, ".tl-name[title='Preview Matroska']").click()
    start_ms = int(element(driver, "[role=slider][aria-label=Start]")
                   .get_attribute("aria-valuenow"))
    click(driver, "[aria-label=Preview] [aria-label=Play]", "Play")
    video = "[aria-label=Preview] video"
    wait(driver, lambda d: video_state(d, video)["t"] > 1.5, "the range plays")
    state = video_state(driver, video)
    query = urllib.parse.parse_qs(urllib.parse.urlparse(state["src"]).query)
    assert query["command"] == ["getPlayback"] and query["deviceid"] == [str(MATROSKA)]
    assert not state["hidden"] and state["error"] is None
    first_ms = int(js(driver, "return document.querySelector(arguments[0]).dataset.firstFrame",
                      video))
    assert start_ms - 1000 <= first_ms <= start_ms  # the keyframe at or before Start (1 s GOPs)
    # the time beside the video follows it (updated a few times a second)
    assert abs((int(state["frame"]) - first_ms) / 1000 - state["t"]) < 0.6, (state, first_ms)
    text = element(driver, "#play-time").text
    assert text.startswith("Frame recorded at ") and "UTC" in text, text
    shots(driver, "play-1-range")
    element(driver, "#play-stop").click()
    assert video_state(driver, video)["hidden"]
    assert element(driver, "#preview-img").is_displayed()


def draw_mask_on_matroska(driver: WebDriver) -> None:
    """The preview shows Matroska (clicked last): the mask drawn belongs to it."""
    element(driver, "#mask-draw").click()
    layer = element(driver, ".mask-layer")
    js(driver, "arguments[0].scrollIntoView({block: 'center'})", layer)
    size = layer.size
    ActionChains(driver, duration=20).move_to_element_with_offset(
        layer, -size["width"] // 4, -size["height"] // 4).click_and_hold() \
        .move_by_offset(size["width"] // 3, size["height"] // 5).release().perform()
    element(driver, "#mask-draw").click()
    assert element(driver, "#mask-camera").text == "Masks on Matroska: 1"
    element(driver, ".tl-name[title='Preview Steady']").click()
    wait(driver, lambda d: element(d, "#mask-camera").text == "Masks on Steady: none",
         "Steady has no mask")
    assert not driver.find_elements(By.CSS_SELECTOR, ".mask-layer .mask")
    element(driver, ".tl-name[title='Preview Matroska']").click()
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".mask-layer .mask")) == 1,
         "Matroska's mask again")
    shots(driver, "play-2-mask")


def start_export_with_evidence(driver: WebDriver) -> etree._Element:
    """Burned-in time at the chosen place and size; the request carries the mask under
    Matroska's <device> only."""
    element(driver, "#options summary").click()
    element(driver, "#burn-time").click()
    js(driver, "document.getElementById('time-position').value = 'top-right';"
               "document.getElementById('time-size').value = '0.12';")
    element(driver, "#path").send_keys("case-4711")
    element(driver, "#name").send_keys("Per camera")
    js(driver, RECORD_BODIES)
    element(driver, "#start-export").click()
    wait(driver, lambda d: "started" in element(d, "#export-message").text, "export started")
    bodies = js(driver, "return window.sentBodies")
    assert len(bodies) == 1
    request = etree.fromstring(bodies[0].encode())
    devices = {d.findtext("deviceid"): d for d in request.iterfind("devices/device")}
    assert set(devices) == {str(STEADY), str(MATROSKA)}
    assert devices[str(STEADY)].find("render") is None
    own = devices[str(MATROSKA)].find("render")
    assert own is not None and len(own.findall("mask")) == 1
    x, y = (float(own.findtext(f"mask/{k}") or "nan") for k in "xy")
    assert abs(x - 0.25) < 0.02 and abs(y - 0.25) < 0.02, (x, y)
    for render in (request.find("render"), own):  # the camera's render repeats the shared
        assert render is not None
        assert render.findtext("timestamp/position") == "top-right"
        assert render.findtext("timestamp/size") == "0.12"
    assert request.find("render/mask") is None
    return request


def play_a_finished_file(driver: WebDriver, server: ThreadServer) -> str:
    export_id = server.command("getExportVideoStatus").findtext("exports/export/exportid")
    card = f"#current [data-exportid='{export_id}']"
    wait(driver, lambda d: js(d, "const c = document.querySelector(arguments[0]);"
                                 "return c && c.dataset.status", card) == "COMPLETED",
         "export COMPLETED")
    status = server.command(f"getExportVideoStatus&exportid={export_id}")
    steady = next(d for d in status.iterfind("exports/export/devices/device")
                  if d.findtext("deviceid") == str(STEADY))
    name = steady.findtext("files/file/name")
    first_ms = parse_timestamp(steady.findtext("files/file/starttime") or "") // 1000
    click(driver, f"{card} a[data-play='{name}']", "Play the file")
    video = "[aria-label=Player] video"
    wait(driver, lambda d: video_state(d, video)["t"] > 1.0, "the file plays")
    state = video_state(driver, video)
    assert f"file={urllib.parse.quote(name)}" in state["src"] or name in \
        urllib.parse.unquote(state["src"])
    assert abs((int(state["frame"]) - first_ms) / 1000 - state["t"]) < 0.6, (state, first_ms)
    assert element(driver, "#player-time").text.startswith("Frame recorded at ")
    shots(driver, "play-3-file")
    element(driver, "#player-close").click()
    assert not element(driver, "[aria-label=Player]").is_displayed()

    # Download all: one link to the export's bundle.zip, fetched by the browser.
    link = element(driver, f"{card} a[data-file='bundle.zip']")
    assert link.text == "Download all"
    query = urllib.parse.parse_qs(urllib.parse.urlparse(link.get_attribute("href")).query)
    assert query == {"command": ["downloadExportVideo"], "exportid": [export_id],
                     "file": ["bundle.zip"]}
    link.click()
    return export_id


def history_filters(driver: WebDriver, export_id: str) -> None:
    element(driver, "#nav-history").click()
    row = f"#history-rows tr[data-exportid='{export_id}']"
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, row), "the export in the history")
    assert element(driver, f"{row} td.folder").text == "case-4711"
    assert "Done" in element(driver, f"{row} .status").text
    element(driver, "#filter-text").send_keys("no such case")
    wait(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, row), "filtered out")
    element(driver, "#filter-text").clear()
    element(driver, "#filter-text").send_keys("4711")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, row), "found by its folder")
    js(driver, "const f = document.getElementById('filter-camera'); f.value = arguments[0];"
               " f.dispatchEvent(new Event('input'));", str(API_DEVICES["Gappy"]))
    wait(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, row), "not a Gappy export")
    js(driver, "const f = document.getElementById('filter-camera'); f.value = arguments[0];"
               " f.dispatchEvent(new Event('input'));", str(MATROSKA))
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, row), "a Matroska export")
    shots(driver, "play-4-history")


def sign_out(driver: WebDriver, server: ThreadServer) -> None:
    element(driver, "[aria-label='Sign out']").click()
    wait(driver, lambda d: element(d, "#login-view").is_displayed(), "the login form again")
    assert "signed out" in element(driver, "#login-error").text
    assert not element(driver, "[aria-label='Sign out']").is_displayed()
    status = js(driver, "return fetch('/command?command=getDeviceList',"
                        " {headers: {'X-Requested-With': 'XMLHttpRequest'}})"
                        ".then((r) => r.status)")
    assert status == 401, "the session has ended on the server"
    shots(driver, "play-5-signed-out")


def handles_views_and_words(driver: WebDriver) -> None:
    """Home/End move a handle as far as it goes; "Last day" ends now, not later; a phone's
    help has no Ctrl + wheel; a live export shows how long it has run, not a percentage."""
    def slider_value(label: str) -> int:
        return int(element(driver, f"[role=slider][aria-label={label}]")
                   .get_attribute("aria-valuenow"))

    start, end = slider_value("Start"), slider_value("End")
    handle = element(driver, "[role=slider][aria-label=Start]")
    handle.send_keys(Keys.END)
    assert slider_value("Start") == end - 1000 and slider_value("End") == end
    lowest = int(handle.get_attribute("aria-valuemin"))
    handle.send_keys(Keys.HOME)
    assert slider_value("Start") == lowest < start
    element(driver, "#last-minute").click()
    wait(driver, lambda d: slider_value("Start") == start, "the last minute again")
    element(driver, "#zoom-day").click()
    to_ms, now_ms = js(driver, "return [state.timeline.to, Date.now()]")
    assert to_ms <= now_ms, (to_ms, now_ms)
    element(driver, "#zoom-fit").click()
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
    try:
        shown = js(driver, "return Array.from(document.querySelectorAll('.tl-help'))"
                           ".filter((p) => getComputedStyle(p).display !== 'none')"
                           ".map((p) => p.textContent)")
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert len(shown) == 1 and "Ctrl" not in shown[0] and "Tap" in shown[0], shown
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() - 125))
    text = js(driver, "const x = new DOMParser().parseFromString(arguments[0],"
                      " 'application/xml').documentElement;"
                      "return ExportView.row(x, {confirming: ''}).innerText;",
              "<export><exportid>9</exportid><path>p</path><status>SYNCING</status>"
              f"<created>{started}.000</created><mode>live</mode><progress>2</progress>"
              "<devices><device><deviceid>1</deviceid><name>Cam</name><status>SYNCING</status>"
              "<progress>2</progress><bytes>1000</bytes></device></devices></export>")
    assert "running 2 min" in text and "%" not in text and "Exporting" in text, text


def test_play_mask_download_all_filter_sign_out(server: ThreadServer, browser: WebDriver,
                                                downloads: Path) -> None:
    driver = browser
    sign_in(driver, server)
    tick_two_cameras(driver)
    # Local time in the fields, UTC beside them (the browser runs in Europe/Berlin).
    start_ms = int(element(driver, "[role=slider][aria-label=Start]")
                   .get_attribute("aria-valuenow"))
    utc = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(start_ms // 1000))
    assert element(driver, "#start-other").text.startswith(f"UTC: {utc}")
    assert element(driver, "#start").get_attribute("value") != \
        element(driver, "#start-other").text[5:]
    handles_views_and_words(driver)
    play_the_range(driver)
    draw_mask_on_matroska(driver)
    start_export_with_evidence(driver)
    export_id = play_a_finished_file(driver, server)
    history_filters(driver, export_id)
    sign_out(driver, server)


def test_an_idle_tab_asks_nothing_about_finished_exports(
        server: ThreadServer, browser: WebDriver, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch, api_archive: dict[str, Any]) -> None:
    """A tab left open on a finished export for a minute of its own (virtual) time: no status
    request at all, and no INFO access line; the same minute with an unfinished export: one
    status request a second at most, logged at DEBUG."""
    monkeypatch.setattr(accesslog, "POLL_SUMMARY", accesslog.PollSummary(interval_s=3600))
    driver = browser
    sign_in(driver, server)
    tick_two_cameras(driver)
    element(driver, "#start-export").click()
    export_id = wait(driver, lambda d: js(d, "const c = document.querySelector('#current"
                                             " [data-status=COMPLETED]');"
                                             "return c && c.dataset.exportid"), "export done")
    element(driver, "#nav-history").click()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR,
                                           f"#history-rows tr[data-exportid='{export_id}']"),
         "history shown")
    finished = idle_minute(driver, caplog)
    polls = [m for m in finished["debug"] if "getExportVideoStatus" in m]
    print(f"idle minute, finished export: {len(finished['info'])} INFO access lines, "
          f"{len(polls)} status requests")
    assert finished["info"] == [] and polls == []

    slow = server.command("exportVideo", (
        f"<export><devices><device><deviceid>{STEADY}</deviceid>"
        f"<starttime>{format_timestamp(api_archive['start_us'])}</starttime>"
        f"<endtime>{format_timestamp(api_archive['end_us'])}</endtime></device>"
        "</devices><bandwidth>16</bandwidth></export>")).findtext("exportid")
    # A tab of its own (the first one's virtual time has run out and stays paused).
    driver.switch_to.new_window("tab")
    driver.get(server.url + "/web/#history")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR,
                                           f"#history-rows tr[data-exportid='{slow}']"),
         "the running export shown")
    running = idle_minute(driver, caplog)
    polls = [m for m in running["debug"] if "getExportVideoStatus" in m]
    print(f"idle minute, running export: {len(running['info'])} INFO access lines, "
          f"{len(polls)} status requests")
    assert running["info"] == []
    assert 30 <= len(polls) <= 61, len(polls)


def idle_minute(driver: WebDriver, caplog: pytest.LogCaptureFixture) -> dict[str, list[str]]:
    """The access lines of one minute of the page's virtual time (timers run, time jumps)."""
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="sense_plugin.access"):
        driver.execute_cdp_cmd("Emulation.setVirtualTimePolicy", {
            "policy": "pauseIfNetworkFetchesPending", "budget": 60_000})
        wait(driver, lambda d: js(d, "return performance.now()") is not None, "page alive")
        time.sleep(0.5)
        deadline = time.monotonic() + 60
        seen = 0
        while time.monotonic() < deadline:  # the budget ends: virtual time pauses
            before = js(driver, "return Date.now()")
            time.sleep(0.3)
            if js(driver, "return Date.now()") == before:
                seen += 1
                if seen >= 3:
                    break
            else:
                seen = 0
        records = [r for r in caplog.records if r.name == "sense_plugin.access"]
    return {"info": [r.getMessage() for r in records if r.levelno >= logging.INFO],
            "debug": [r.getMessage() for r in records if r.levelno == logging.DEBUG]}
