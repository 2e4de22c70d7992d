"""The recorder against real sources: a file paced at real time and MPEG-TS over local HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sense_plugin.archive.clock import SourceClock, is_discontinuity
from sense_plugin.archive.index import ArchiveIndex
from sense_plugin.archive.probe import SegmentInfo, probe_segment
from sense_plugin.archive.recorder import Recorder, is_file_source
from sense_plugin.archive.scan import reconcile_device
from sense_plugin.naming import parse_segment_filename
from sense_plugin.timestamps import now_us

WriteSegment = Callable[..., Path]
T0 = 1_795_168_800_000_000
S = 1_000_000
CONNECTIONS = web.AppKey("connections", list[str])


class Harness:
    """A recorder in its own thread, collecting the segments it commits."""

    def __init__(self, source: str, directory: Path, **options: object) -> None:
        self.infos: list[SegmentInfo] = []
        self.statuses: list[str] = []
        self.recorder = Recorder(source, directory, on_segment=self._committed,
                                 name="test", **options)  # type: ignore[arg-type]
        self.thread = threading.Thread(target=self.recorder.run, daemon=True)
        self.started = time.monotonic()
        self.stop_s = 0.0

    def _committed(self, path: Path) -> None:
        self.infos.append(probe_segment(path))

    async def __aenter__(self) -> Harness:
        self.thread.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop and join off the loop: a local HTTP source is served by this very loop."""
        self.recorder.stop()
        began = time.monotonic()
        await asyncio.to_thread(self.thread.join, 10)
        assert not self.thread.is_alive()
        self.stop_s = time.monotonic() - began

    async def wait_for(self, condition: Callable[[], bool], timeout_s: float = 15) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            status = self.recorder.status
            if not self.statuses or self.statuses[-1] != status:
                self.statuses.append(status)
            assert time.monotonic() < deadline, f"timed out; statuses {self.statuses}"
            await asyncio.sleep(0.02)


def assert_contiguous(infos: list[SegmentInfo]) -> None:
    for before, after in zip(infos, infos[1:], strict=False):
        assert after.start_us == before.end_us, "segments of one session join exactly"
    for info in infos:
        assert parse_segment_filename(info.path.name) == info.start_us
        assert info.keyframes >= 1


@pytest.fixture
def clip(tmp_path: Path, write_segment: WriteSegment) -> Path:
    """12 s of 64x64 H.264 with audio, a keyframe every 0.5 s."""
    return write_segment(tmp_path / "src", T0, duration_s=12.0, audio=True)


async def test_file_source_is_recorded_at_real_time(tmp_path: Path, clip: Path) -> None:
    archive = tmp_path / "archive"
    began_us = now_us()
    async with Harness(str(clip), archive, segment_s=1.0) as rec:
        await rec.wait_for(lambda: len(rec.infos) >= 2)
        took_s = time.monotonic() - rec.started
    assert took_s > 1.5  # paced, not read at disk speed
    assert_contiguous(rec.infos)
    first = rec.infos[0]
    assert abs(first.start_us - began_us) < S
    assert first.end_us - first.start_us == S and first.has_audio
    assert rec.statuses[-1] == "recording"
    assert not list(archive.glob(".*.part"))  # stopping closes the open segment


def ts_app(clip_ts: Path, plan: list[str]) -> web.Application:
    """Serves MPEG-TS at about real time. ``plan`` says what each connection gets:
    ``"ok"`` the whole clip, ``"die"`` 2.5 s of it then a dropped connection, ``"503"``."""
    data = clip_ts.read_bytes()
    rate_bps = len(data) / 12.0
    connections: list[str] = []

    async def live(request: web.Request) -> web.StreamResponse:
        action = plan[len(connections)] if len(connections) < len(plan) else "ok"
        connections.append(action)
        if action == "503":
            raise web.HTTPServiceUnavailable()
        response = web.StreamResponse(headers={"Content-Type": "video/mp2t"})
        await response.prepare(request)
        limit = int(rate_bps * 2.5) if action == "die" else len(data)
        step = int(rate_bps / 20)
        for offset in range(0, limit, step):
            await response.write(data[offset:min(offset + step, limit)])
            await asyncio.sleep(0.05)
        if action == "die":
            assert request.transport is not None
            request.transport.abort()
        return response

    app = web.Application()
    app.router.add_get("/live.ts", live)
    app[CONNECTIONS] = connections
    return app


@pytest.fixture
async def ts_server(tmp_path: Path,
                    write_segment: WriteSegment) -> AsyncIterator[Callable[..., object]]:
    servers: list[TestServer] = []

    async def start(plan: list[str]) -> TestServer:
        clip_ts = write_segment(tmp_path / "ts", T0, duration_s=12.0, fmt="ts", audio=True)
        server = TestServer(ts_app(clip_ts, plan), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


async def test_http_ts_source_produces_segments(tmp_path: Path,
                                                ts_server: Callable[..., object]) -> None:
    server = await ts_server([])  # type: ignore[misc]
    url = str(server.make_url("/live.ts"))
    async with Harness(url, tmp_path / "archive", segment_s=1.0) as rec:
        await rec.wait_for(lambda: len(rec.infos) >= 2)
        print(f"first two 1 s segments after {time.monotonic() - rec.started:.2f} s")
    print(f"stopped a live HTTP recorder in {rec.stop_s:.3f} s")
    assert_contiguous(rec.infos)
    assert rec.infos[0].path.suffix == ".mkv"  # ADTS AAC from TS: Matroska
    assert rec.infos[0].has_audio
    assert abs(rec.infos[0].start_us - now_us()) < 10 * S


async def test_reconnects_after_the_source_dies(tmp_path: Path,
                                                ts_server: Callable[..., object]) -> None:
    server = await ts_server(["die", "503", "503", "ok"])  # type: ignore[misc]
    url = str(server.make_url("/live.ts"))
    async with Harness(url, tmp_path / "archive", segment_s=1.0, backoff_first_s=0.2) as rec:
        await rec.wait_for(lambda: len(server.app[CONNECTIONS]) >= 4)
        before = len(rec.infos)
        await rec.wait_for(lambda: len(rec.infos) >= before + 1)
        await rec.wait_for(lambda: rec.recorder.status == "recording")
    print("statuses:", rec.statuses)
    errors = [s for s in rec.statuses if s.startswith("error: ")]
    assert errors, rec.statuses
    assert rec.statuses.index("recording") < rec.statuses.index(errors[0])
    starts = [info.start_us for info in rec.infos]
    assert starts == sorted(starts)
    assert before >= 1  # what was recorded before the drop was kept


async def test_unreachable_source_reports_and_stops(tmp_path: Path) -> None:
    async with Harness("http://127.0.0.1:9/none.ts", tmp_path / "archive", segment_s=1.0,
                 backoff_first_s=0.1, backoff_max_s=0.4) as rec:
        await rec.wait_for(lambda: rec.recorder.status.startswith("error: "))
        assert rec.recorder.status != "error: "
        print("unreachable:", rec.recorder.status)
    print(f"stopped a reconnecting recorder in {rec.stop_s:.3f} s")
    assert rec.infos == []


def test_file_source_detection() -> None:
    assert is_file_source("/srv/cam.mp4") and is_file_source("file:cam.mp4")
    assert not is_file_source("rtsp://cam/stream1") and not is_file_source("http://x/y.ts")


def test_clock_calibrates_then_freezes() -> None:
    clock = SourceClock()
    clock.observe(0, 1_000 * S + 700_000)  # buffered during probing: arrived late
    clock.observe(S, 1_001 * S + 10_000)  # live
    assert clock.to_archive(0) == 1_000 * S + 10_000
    clock.freeze()
    clock.observe(2 * S, 1_002 * S + 900_000)
    assert clock.to_archive(0) == 1_000 * S + 10_000
    assert not clock.reanchor_if_drifted()
    clock.observe(3 * S, 1_003 * S + 30 * S)  # the source fell 30 s behind
    assert clock.reanchor_if_drifted() and clock.to_archive(3 * S) == 1_033 * S
    assert is_discontinuity(10 * S, 0) and is_discontinuity(0, 60 * S)
    assert not is_discontinuity(10 * S, 10 * S - 100_000)


@pytest.fixture
def crash_script(tmp_path: Path) -> Iterator[Path]:
    script = tmp_path / "record.py"
    script.write_text(
        "import sys\nfrom pathlib import Path\n"
        "from sense_plugin.archive.recorder import Recorder\n"
        "Recorder(sys.argv[1], Path(sys.argv[2]), segment_s=60, on_segment=print).run()\n"
    )
    yield script


def test_killed_recorder_leaves_a_recoverable_partial(tmp_path: Path, clip: Path,
                                                      crash_script: Path) -> None:
    archive = tmp_path / "archive"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen([sys.executable, str(crash_script), str(clip), str(archive)],
                             env=env)
    try:
        deadline = time.monotonic() + 20
        while not any(p.stat().st_size > 20_000 for p in archive.glob(".*.rec.part")):
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    (partial,) = archive.glob(".*.rec.part")
    index = ArchiveIndex(tmp_path / "archive.sqlite3")
    try:
        report = reconcile_device(index, 1, archive, recover=True)
        assert (report.recovered, report.added) == (1, 1)
        (segment,) = index.segments(1, 0, 2**62)
        assert segment.path.name == partial.name[1 : -len(".rec.part")]
        assert 0 < segment.end_us - segment.start_us < 12 * S
    finally:
        index.close()
    assert not partial.exists()
