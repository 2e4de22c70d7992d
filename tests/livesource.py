"""Live sources for tests: a server recording a clip at real time, a recorder in a thread, and
GStreamer's RTSP server (tests/rtsp_server.py) run by the system Python."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from apiclient import command
from conftest import ARCHIVE_DEVICE_IDS, WriteSegment
from lxml import etree

from sense_plugin.archive.recorder import Recorder
from sense_plugin.config import config_from_dict
from sense_plugin.testing.serverprocess import free_port

DEVICE = ARCHIVE_DEVICE_IDS[0]
SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SERVER = Path(__file__).with_name("rtsp_server.py")


async def live_client(make_client: Any, tmp_path: Path, write_segment: WriteSegment,
                      clip_s: float, segment_s: float = 1, **export: Any) -> Any:
    """A client of a server recording a clip played at real time (looped by reconnects)."""
    clip = write_segment(tmp_path / "src", 1_795_168_800_000_000, duration_s=clip_s,
                         label="LIVE")
    data = {"server": {"serverid": "7015498111931795223", "data_dir": "data"},
            "archive": {"demo": False, "segment_seconds": segment_s},
            "export": export,
            "devices": [{"deviceid": str(DEVICE), "name": "Live", "source": str(clip)}]}
    client = await make_client(config_from_dict(data, base_dir=tmp_path))
    deadline = asyncio.get_running_loop().time() + 10
    while True:  # until the recording has begun (the open segment counts, docs/archive.rst)
        root = await command(client, "getRecordings", deviceid=DEVICE)
        if root.find(".//recording") is not None or root.find(".//interval") is not None:
            break
        assert asyncio.get_running_loop().time() < deadline, etree.tostring(root)
        await asyncio.sleep(0.1)
    return client


class RecorderThread:
    """A :class:`~sense_plugin.archive.recorder.Recorder` in its own thread, keeping the
    segments it commits and every status it was seen in."""

    def __init__(self, source: str, directory: Path, **options: Any) -> None:
        self.paths: list[Path] = []
        self.statuses: list[str] = []
        self.recorder = Recorder(source, directory, on_segment=self.paths.append,
                                 name="camera", **options)
        self.thread = threading.Thread(target=self.recorder.run, daemon=True)

    async def __aenter__(self) -> RecorderThread:
        self.thread.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.recorder.stop()
        await asyncio.to_thread(self.thread.join, 15)
        assert not self.thread.is_alive()

    async def wait_for(self, condition: Callable[[], bool], timeout_s: float = 30) -> None:
        """Until ``condition()``; notes each status on the way."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not condition():
            self.note()
            assert loop.time() < deadline, f"timed out; statuses {self.statuses}"
            await asyncio.sleep(0.02)
        self.note()

    def note(self) -> None:
        status = self.recorder.status
        if not self.statuses or self.statuses[-1] != status:
            self.statuses.append(status)


class RtspServer:
    """GStreamer's RTSP server (tests/rtsp_server.py) serving ``mounts`` (name → KIND:FILE)."""

    def __init__(self, tmp_path: Path, mounts: dict[str, str]) -> None:
        self.log_path = tmp_path / "rtsp-server.log"
        self.port = free_port()
        self.mounts = mounts
        self.process: subprocess.Popen[str] | None = None

    def url(self, mount: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{mount}"

    def __enter__(self) -> RtspServer:
        specs = [f"{name}={spec}" for name, spec in self.mounts.items()]
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [SYSTEM_PYTHON, str(RTSP_SERVER), str(self.port), *specs],
                stdout=subprocess.PIPE, stderr=log, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("ready"):
            self.__exit__()
            raise AssertionError((line, self.log_path.read_text()))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.process = None


def require_gstreamer() -> None:
    """Skip with a hint unless GStreamer's RTSP server runs under the system Python."""
    probe = ("import gi; gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import GstRtspServer")
    try:
        done = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=30)
    except OSError:
        done = None
    if done is None or done.returncode != 0:
        pytest.skip("needs GStreamer's RTSP server for /usr/bin/python3 (apt-get install "
                    "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good "
                    "gstreamer1.0-plugins-bad, or run .ci/run)")
