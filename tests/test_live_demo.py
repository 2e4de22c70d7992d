"""The live demo (docs/archive.rst) through the real ``sense-plugin serve``: three demo devices
added,
the last minutes back-filled, then recorded in real time from the synthetic source, and a
back-fill interrupted by a port already in use is completed by the next start."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import av

from sense_plugin.archive.backfill import MARKER_NAME
from sense_plugin.archive.demo import Painter
from sense_plugin.naming import parse_segment_filename
from sense_plugin.testing.serverprocess import ServerProcess, free_port
from sense_plugin.timestamps import US_PER_S, format_timestamp, now_us, parse_timestamp

IDS = ("9890179877273119875", "9890179877273119876", "9890179877273119877")
CONFIG = """
[server]
serverid = "7015498111931795223"
data_dir = "data"
[archive]
demo = true
demo_minutes = {minutes}
"""


def write_config(tmp_path: Path, minutes: float) -> Path:
    path = tmp_path / "sense.toml"
    path.write_text(CONFIG.format(minutes=minutes))
    return path


def recordings(server: ServerProcess, device: str) -> list[tuple[int, int]]:
    root = server.command(f"getRecordings&deviceid={device}")
    return [(parse_timestamp(i.findtext("starttime") or ""),
             parse_timestamp(i.findtext("endtime") or ""))
            for i in root.iterfind("recordings/intervals/interval")]


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def clock_band(frame: av.VideoFrame, rows: range) -> bytes:
    plane = frame.planes[0]
    data = bytes(plane)
    return b"".join(data[y * plane.line_size : y * plane.line_size + frame.width] for y in rows)


def distance(a: bytes, b: bytes) -> int:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True))


def shown_instant_us(segment: Path, label: str, near_us: int) -> int:
    """The instant (to 10 ms) whose rendering best matches the segment's first frame clock."""
    painter = Painter(320, 180, label)
    with av.open(str(segment)) as container:
        first = next(container.decode(video=0))
    decoded = clock_band(first, painter.clock_rows)
    candidates = range(near_us - 2 * US_PER_S, near_us + 2 * US_PER_S, 10_000)
    return min(candidates, key=lambda t: distance(
        decoded, clock_band(painter.frame(0, t), painter.clock_rows)))


def test_live_demo_without_devices(tmp_path: Path) -> None:
    server = ServerProcess(write_config(tmp_path, 0.5), tmp_path / "server.log")
    began_us = now_us()
    server.start()
    try:
        devices = server.command("getDeviceList").findall("devices/device")
        assert [d.findtext("deviceid") for d in devices] == list(IDS)
        assert [d.findtext("name") for d in devices] == ["Entrance", "Parking", "Lobby"]
        log_text = server.log_path.read_text()
        assert "no [[devices]] configured: added 3 demo devices" in log_text
        # The first live segment (10 s) is indexed: the archive reaches past the start.
        end_us = json.loads((tmp_path / "data" / MARKER_NAME).read_text())["end_us"]
        assert began_us < end_us < now_us()  # the back-fill ends when the recording starts
        wait_for(lambda: all(recordings(server, d) and recordings(server, d)[-1][1]
                             > end_us + 8 * US_PER_S for d in IDS), 60, "live segments")
        # each device's back-fill ends where its live recording begins
        marker = tmp_path / "data" / MARKER_NAME
        wait_for(lambda: json.loads(marker.read_text())["done"], 60, "the back-fill")
        ends_us = json.loads(marker.read_text())["ends_us"]
        for device, live_us in zip(IDS, ends_us, strict=True):
            (first, last), = recordings(server, device)  # back-fill and live join: one interval
            assert first == (live_us - 30 * US_PER_S) // 1000 * 1000
            assert last > end_us + 8 * US_PER_S
        assert all(d.findtext("status") == "recording"
                   for d in server.command("getDeviceList").findall("devices/device"))
        def live_segments() -> list[Path]:  # closed ones: the open one counts as recorded too
            return sorted(p for p in (tmp_path / "data" / "archive" / IDS[0]).glob("*.mp4")
                          if (parse_segment_filename(p.name) or 0) >= began_us)

        wait_for(lambda: bool(live_segments()), 60, "a closed live segment")
        live = live_segments()
        named_us = parse_segment_filename(live[0].name)
        assert named_us is not None
        shown_us = shown_instant_us(live[0], "Entrance", named_us)
        print(f"live segment {live[0].name}: burned-in clock {format_timestamp(shown_us)}, "
              f"archive time {format_timestamp(named_us)}")
        # The picture shows its archive time (measured: 0.2 s behind, two frames of transport).
        assert abs(shown_us - named_us) <= 500_000
    finally:
        assert server.stop() == 0
    source_pid = re.search(r"synthetic source \(pid (\d+)", log_text)
    assert source_pid is not None
    assert not Path(f"/proc/{source_pid.group(1)}").exists()  # the source ended with the server


def test_interrupted_backfill_is_completed_by_the_next_start(tmp_path: Path) -> None:
    config = write_config(tmp_path, 10)
    marker_path = tmp_path / "data" / MARKER_NAME
    first_dir = tmp_path / "data" / "archive" / IDS[0]
    killed = subprocess.Popen(
        [sys.executable, "-m", "sense_plugin", "serve", "--config", str(config),
         "--port", str(free_port())], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:  # a crash (SIGKILL) in the middle of the back-fill
        wait_for(lambda: marker_path.exists() and len(list(first_dir.glob("*.mp4"))) >= 3,
                 60, "the back-fill to begin")
    finally:
        killed.kill()
        killed.wait()
    marker = json.loads(marker_path.read_text())
    assert marker["done"] is False
    end_us = marker["end_us"]
    partial = len(list((tmp_path / "data" / "archive" / IDS[0]).glob("*.mp4")))
    assert partial < 60  # interrupted: 10 min of 10 s segments were planned
    server = ServerProcess(config, tmp_path / "server.log")
    server.start()
    try:
        wait_for(lambda: json.loads((tmp_path / "data" / MARKER_NAME).read_text())["done"],
                 120, "the back-fill to complete")
        ends_us = json.loads(marker_path.read_text())["ends_us"]  # where each live one began
        for device, live_us in zip(IDS, ends_us, strict=True):
            (first, last), *_ = recordings(server, device)  # wire times are milliseconds
            assert first == (live_us - 600 * US_PER_S) // 1000 * 1000
            assert last >= end_us // 1000 * 1000
    finally:
        assert server.stop() == 0
    print(f"{partial} segments per device before the interrupted start ended; completed after")

