"""The real ``sense-plugin serve`` process: start, answer, stop on SIGTERM; survive SIGKILL."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import av
import pytest

from sense_plugin.testing.serverprocess import ServerProcess
from sense_plugin.timestamps import format_timestamp, parse_timestamp

DEVICE = "9890179877273119875"


@pytest.fixture
def server(tmp_path: Path) -> ServerProcess:
    config = tmp_path / "sense.toml"
    config.write_text(f"""
[server]
serverid = "7015498111931795223"
data_dir = "data"
[archive]
demo = true
demo_minutes = 2
[[devices]]
deviceid = "{DEVICE}"
name = "Entrance"
""")
    return ServerProcess(config, tmp_path / "server.log")


def wait_demo(server: ServerProcess) -> tuple[int, int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        root = server.command("getServerStatus")
        last = root.findtext("serverstatus/devices/device/lastrecordedimage")
        first = root.findtext("serverstatus/devices/device/firstrecordedimage")
        if first and last and parse_timestamp(last) - parse_timestamp(first) > 100_000_000:
            return parse_timestamp(first), parse_timestamp(last)
        time.sleep(0.2)
    raise AssertionError("demo archive not ready")


def _one_worker(server: ServerProcess) -> ServerProcess:
    """One export at a time, so the later exports are still queued at the kill."""
    text = server.config.read_text() + "[export]\nmax_concurrent_jobs = 1\n"
    server.config.write_text(text)
    return server


def status(server: ServerProcess, export_id: str) -> tuple[str, int]:
    root = server.command(f"getExportVideoStatus&exportid={export_id}")
    device = root.find("exports/export/devices/device")
    return device.findtext("status"), int(device.findtext("progress"))


def test_serve_answers_and_stops_cleanly_on_sigterm(server: ServerProcess) -> None:
    server.start()
    assert server.get("/info").findtext("apiinfo/version")
    assert server.command("getDeviceList").find("devices").get("count") == "1"
    began = time.monotonic()
    assert server.stop(signal.SIGTERM) == 0
    assert time.monotonic() - began < 5


def test_sigkill_mid_export_then_restart_completes(server: ServerProcess) -> None:
    server = _one_worker(server)
    server.start()
    first, last = wait_demo(server)
    body = (f"<export><devices><device><deviceid>{DEVICE}</deviceid>"
            f"<starttime>{format_timestamp(first)}</starttime>"
            f"<endtime>{format_timestamp(last)}</endtime></device></devices>"
            "<bandwidth>3000</bandwidth></export>").encode()
    running = server.command("exportVideo", body).findtext("exportid")
    unthrottled = body.replace(b"<bandwidth>3000</bandwidth>", b"")
    queued = server.command("exportVideo", unthrottled).findtext("exportid")
    queued2 = server.command("exportVideo", unthrottled).findtext("exportid")
    while status(server, running)[1] < 10:
        time.sleep(0.1)
    server.stop(signal.SIGKILL)
    export_dir = server.config.parent / "data" / "exports" / "unnamed" / running
    finals = [p for p in export_dir.iterdir() if not p.name.endswith(".part")]
    assert finals == []  # nothing under a final name yet
    server.start()
    assert status(server, queued2)[0] == "PENDING"
    deadline = time.monotonic() + 90
    while status(server, queued2)[0] != "COMPLETED":
        assert time.monotonic() < deadline, server.log_path.read_text()
        time.sleep(0.3)
    for export_id in (running, queued, queued2):
        files = list((server.config.parent / "data" / "exports" / "unnamed" / export_id)
                     .iterdir())
        videos = [p for p in files if p.suffix == ".mp4"]
        assert len(videos) == 1 and not any(p.name.endswith(".part") for p in files)
        with av.open(str(videos[0])) as container:
            frames = sum(1 for p in container.demux(video=0) if p.size)
        assert frames > 1000  # ~2 minutes at 10 fps
    assert server.stop() == 0
