"""Cameras that are hard to record, against real sources: GStreamer's RTSP server with UDP
only, a stream whose video stops while its audio flows, a resolution change, a long-GOP
stream whose first keyframe comes without timestamps, and MJPEG over HTTP from a server made
with the standard library. Every frame carries its number (tests/framecode.py): recordings
are judged by decoding them and comparing the numbers with what the source sent.
"""

from __future__ import annotations

import asyncio
import http.server
import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import corpus
import framecode
import pytest
from apiclient import command, export_body, wait_export
from livesource import RecorderThread, RtspServer, free_port, require_gstreamer
from lxml import etree
from test_export_kinds import export_dir
from test_metrics import scrape, value

from sense_plugin.naming import parse_segment_filename
from sense_plugin.timestamps import format_timestamp, now_us

S = 1_000_000


def decoded(path: Path) -> list[tuple[int, int, tuple[int, int]]]:
    """(archive µs, frame number, size) of every frame of a segment, in presentation order.

    Archive time: the segment's name plus the frame's offset from the segment's first frame.
    """
    start_us = parse_segment_filename(path.name)
    assert start_us is not None
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        header = (stream.codec_context.width, stream.codec_context.height)
        tb = stream.time_base
        assert tb is not None
        for frame in container.decode(stream):
            assert frame.pts is not None
            at_us = frame.pts * tb.numerator * S // tb.denominator
            frames.append((at_us, framecode.read_number(frame), (frame.width, frame.height)))
    frames.sort()
    first = frames[0][0]
    for _, number, size in frames:
        assert size == header, f"{path.name}: frame {number} is {size}, the header says {header}"
    return [(start_us + at - first, number, size) for at, number, size in frames]


def recorded(paths: list[Path]) -> list[tuple[int, int, tuple[int, int]]]:
    """Every frame of the committed segments, in archive order."""
    return [frame for path in sorted(paths) for frame in decoded(path)]


def assert_consecutive(numbers: list[int]) -> None:
    missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
    assert not missing, f"frames {missing[:10]}... ({len(missing)}) were sent but not recorded"


@pytest.fixture
def cameras(tmp_path: Path) -> Iterator[RtspServer]:
    """One RTSP server: a UDP-only camera, a resolution change, video that stops."""
    corpus.require_ffmpeg()
    require_gstreamer()
    clips = tmp_path / "clips"
    clips.mkdir()
    framecode.write_clip(clips / "steady.ts", 250, fmt="mpegts")
    framecode.write_clip(clips / "big.ts", 125, 320, 180, fmt="mpegts")
    framecode.write_clip(clips / "small.ts", 125, 160, 90, first=125, fmt="mpegts")
    (clips / "resize.ts").write_bytes((clips / "big.ts").read_bytes()
                                      + (clips / "small.ts").read_bytes())
    framecode.write_clip(clips / "mute.mkv", 50, audio_s=30)
    mounts = {"udp": f"udp+h264-ts:{clips / 'steady.ts'}",
              "resize": f"h264-ts:{clips / 'resize.ts'}",
              "novideo": f"h264-aac-mkv:{clips / 'mute.mkv'}"}
    with RtspServer(tmp_path, mounts) as server:
        yield server


async def test_udp_only_camera_is_recorded(tmp_path: Path, cameras: RtspServer,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "sense_plugin.archive.recorder")
    async with RecorderThread(cameras.url("udp"), tmp_path / "a", segment_s=2) as rec:
        await rec.wait_for(lambda: len(rec.paths) >= 2)
        assert rec.recorder.status == "recording (rtsp over udp)"
    frames = recorded(rec.paths)
    numbers = [n for _, n, _ in frames]
    assert numbers[0] == 0  # from the first frame the camera sent
    assert_consecutive(numbers)
    assert "RTSP over tcp failed (Protocol not supported); trying udp" in caplog.text
    assert "camera: RTSP over udp" in caplog.text


async def test_fixed_transport_is_kept(tmp_path: Path, cameras: RtspServer) -> None:
    async with RecorderThread(cameras.url("udp"), tmp_path / "a", segment_s=2,
                              rtsp_transport="tcp", backoff_first_s=0.2) as rec:
        await rec.wait_for(lambda: rec.recorder.status.startswith("error: "))
    assert rec.recorder.status == "stopped" and rec.paths == []
    assert "error: Protocol not supported" in rec.statuses


async def test_resolution_change_starts_a_segment(tmp_path: Path, cameras: RtspServer,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "sense_plugin.archive.recorder")
    async with RecorderThread(cameras.url("resize"), tmp_path / "a", segment_s=4) as rec:
        await rec.wait_for(lambda: any(decoded(p)[0][2] == (160, 90) for p in rec.paths))
    frames = recorded(rec.paths)  # each segment: one size, the one its header states
    numbers = [n for _, n, _ in frames]
    assert numbers[0] == 0
    assert_consecutive(numbers)
    sizes = {n: size for _, n, size in frames}
    assert sizes[124] == (320, 180) and sizes[125] == (160, 90)
    starts = {decoded(p)[0][1] for p in rec.paths}
    assert 125 in starts  # a new segment begins exactly at the change
    assert "picture size changed to 160x90; starting a new segment" in caplog.text


async def test_export_across_a_resolution_change(tmp_path: Path, cameras: RtspServer,
                                                 archive_config: Any,
                                                 make_client: Any) -> None:
    """One file per run of equal parameters, in order, every frame of the range once."""
    config = archive_config([{"name": "Resize", "source": cameras.url("resize")}],
                            segment_seconds=2)
    device = config.devices[0]
    client = await make_client(config)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 40
    while True:  # until the archive holds the change and two seconds after it
        paths = sorted(p for p in device.archive_dir.glob("*") if parse_segment_filename(p.name))
        frames = recorded(paths) if paths else []
        if frames and frames[-1][1] >= 180:
            break
        assert loop.time() < deadline, [n for _, n, _ in frames][-3:]
        await asyncio.sleep(0.2)
    times = {n: at_us for at_us, n, _ in frames}
    start_us, end_us = times[60] - 10_000, times[175] - 10_000  # frames 50 (keyframe) .. 174
    root = await command(client, "exportVideo", body=export_body(
        [(device.device_id, format_timestamp(start_us), format_timestamp(end_us))],
        name="resize"))
    export = await wait_export(client, int(root.findtext("exportid")), timeout_s=60)
    assert export.findtext("status") == "COMPLETED", etree.tostring(export).decode()
    assert export.findtext("devices/device/description") == \
        "the video changes inside the range: one file per run (h264 320x180, h264 160x90)"
    elements = export.findall("devices/device/files/file")
    folder = export_dir(config, export)
    files = [folder / f.findtext("name") for f in elements]
    assert [p.name.rsplit("_", 1)[1] for p in files] == ["part001.mp4", "part002.mp4"]
    numbers, sizes = [], []
    for path, element in zip(files, elements, strict=True):
        found = framecode.numbers_in(path)
        assert int(element.findtext("framecount")) == len(found)
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            sizes.append((stream.codec_context.width, stream.codec_context.height))
        numbers += found
    assert sizes == [(320, 180), (160, 90)]
    assert numbers == list(range(50, 175))  # every frame once, none lost at the change
    manifest = etree.parse(str(folder / "manifest.xml")).getroot()
    assert [f.findtext("name") for f in manifest.findall("devices/device/file")] == \
        [p.name for p in files]


async def test_video_that_stops_while_audio_flows(tmp_path: Path, cameras: RtspServer,
                                                  archive_config: Any, make_client: Any,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    config = archive_config([{"name": "Mute", "source": cameras.url("novideo"),
                              "video_stall_s": 1.5}], segment_seconds=10)
    device = config.devices[0]
    client = await make_client(config)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        root = await command(client, "getDeviceList")
        status = root.findtext("devices/device/status")
        if status == "stalled: no video for 1.5 s":
            break
        assert loop.time() < deadline, status
        await asyncio.sleep(0.1)
    samples = await scrape(client)
    assert value(samples, "sense_recorder_up", deviceid=str(device.device_id)) == 0
    await asyncio.sleep(1.0)  # audio keeps coming: still one WARNING
    warnings = [r for r in caplog.records if "no video for 1.5 s" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    # what came before the stall is in the archive now, not held in an open segment
    paths = [p for p in device.archive_dir.glob("*") if parse_segment_filename(p.name)]
    numbers = [n for _, n, _ in recorded(paths)]
    assert numbers[0] == 0 and numbers[-1] == 48  # the server never sends the clip's last
    assert_consecutive(numbers)


def strip_first_video_pts(data: bytearray) -> None:
    """Remove the timestamps of the first video PES of an MPEG-TS (as a camera's first
    keyframe arrives on a fresh connection): the PES header keeps its length, stuffed."""
    for offset in range(0, len(data), 188):
        packet = data[offset:offset + 188]
        payload = 4 + (1 + packet[4] if packet[3] & 0x20 else 0)
        pes = offset + payload
        if packet[1] & 0x40 and data[pes:pes + 4] == b"\x00\x00\x01\xe0":
            flags = data[pes + 7]
            length = 5 if flags & 0xC0 == 0x80 else 10
            data[pes + 7] = flags & 0x3F
            data[pes + 9:pes + 9 + length] = b"\xff" * length
            return
    raise AssertionError("no video PES")


async def test_first_keyframe_without_timestamps_is_kept(tmp_path: Path) -> None:
    """A 10 s GOP: losing the first keyframe would lose the first 10 s."""
    clip = tmp_path / "long-gop.ts"
    framecode.write_clip(clip, 300, gop_frames=250, fmt="mpegts")
    data = bytearray(clip.read_bytes())
    strip_first_video_pts(data)
    clip.write_bytes(data)
    with av.open(str(clip)) as container:  # the source really sends it without timestamps
        first = next(container.demux(container.streams.video[0]))
        assert first.is_keyframe and first.pts is None and first.dts is None
    async with RecorderThread(str(clip), tmp_path / "a", segment_s=60) as rec:
        await rec.wait_for(lambda: rec.recorder.open_span is not None
                           and rec.recorder.open_span[1] - rec.recorder.open_span[0] > 2 * S)
    numbers = [n for _, n, _ in recorded(rec.paths)]
    assert numbers[0] == 0
    assert_consecutive(numbers)


class HttpCamera(http.server.ThreadingHTTPServer):
    """A camera over HTTP (the standard library's server): sends ``chunks`` (one per frame) at
    ``fps``, as multipart JPEG parts (MJPEG) or raw bytes (MPEG-TS); notes when each went out.
    """

    def __init__(self, chunks: list[bytes], fps: float, *, mjpeg: bool) -> None:
        super().__init__(("127.0.0.1", 0), _CameraHandler)
        self.chunks, self.fps, self.mjpeg = chunks, fps, mjpeg
        self.sent_us: dict[int, int] = {}
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/video"

    def __enter__(self) -> HttpCamera:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(5)


class _CameraHandler(http.server.BaseHTTPRequestHandler):
    server: HttpCamera

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        camera = self.server
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame"
                         if camera.mjpeg else "video/mp2t")
        self.end_headers()
        began = time.monotonic()
        try:
            for number, chunk in enumerate(camera.chunks):
                time.sleep(max(0.0, began + number / camera.fps - time.monotonic()))
                if camera.mjpeg:
                    chunk = (b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                             + str(len(chunk)).encode() + b"\r\n\r\n" + chunk + b"\r\n")
                self.wfile.write(chunk)
                self.wfile.flush()
                camera.sent_us.setdefault(number, now_us())
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.mark.parametrize("fps", [10, 30])
async def test_mjpeg_over_http_is_stamped_by_arrival(tmp_path: Path, fps: int) -> None:
    with HttpCamera(framecode.jpeg_frames(fps * 20), fps, mjpeg=True) as camera:
        async with RecorderThread(camera.url, tmp_path / "a", segment_s=2) as rec:
            await rec.wait_for(lambda: len(rec.paths) >= 3)
            stopped_us = now_us()
    frames = recorded(rec.paths)
    numbers = [n for _, n, _ in frames]
    assert_consecutive(numbers)
    for at_us, number, _ in frames:  # archive time is when the camera sent the frame
        assert at_us <= stopped_us
        assert abs(at_us - camera.sent_us[number]) < 600_000, (number, at_us)
    for before, after in zip(sorted(rec.paths), sorted(rec.paths)[1:], strict=False):
        gap_us = decoded(after)[0][0] - decoded(before)[-1][0]
        assert gap_us < 3 * S // fps  # segments of one connection follow each other


async def test_fast_source_clock_is_stamped_by_arrival(tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """MPEG-TS at 25 fps by its timestamps, sent at 30 fps: its clock runs 20 % fast."""
    with HttpCamera(framecode.ts_chunks(25 * 20), 30, mjpeg=False) as camera:
        async with RecorderThread(camera.url, tmp_path / "a", segment_s=2) as rec:
            await rec.wait_for(lambda: len(camera.sent_us) >= 25 * 16)
            stopped_us = now_us()
    frames = recorded(rec.paths)
    numbers = [n for _, n, _ in frames]
    assert_consecutive(numbers)
    ahead = [(n, at_us - camera.sent_us[n]) for at_us, n, _ in frames]
    assert all(ahead_us < 1_500_000 for _, ahead_us in ahead), ahead  # bound + one GOP at most
    assert all(at_us <= stopped_us for at_us, _, _ in frames)
    settled = [ahead_us for n, ahead_us in ahead if n > numbers[-1] - 100]
    assert all(abs(ahead_us) < 600_000 for ahead_us in settled), settled
    drifts = [r.getMessage() for r in caplog.records if "wall clock by" in r.getMessage()]
    assert len(drifts) == 1 and "ran ahead of the wall clock by 1." in drifts[0], drifts


def test_watchdog_warns_once_per_stall_and_logs_recovery(
        caplog: pytest.LogCaptureFixture) -> None:
    from sense_plugin.archive.sessionparts import VideoWatchdog

    caplog.set_level(logging.INFO, "sense_plugin.archive.recorder")
    watchdog = VideoWatchdog("Gate", 2 * S)
    watchdog.video(100 * S)
    assert not watchdog.stalls(101 * S)  # audio, video 1 s ago
    assert watchdog.stalls(102 * S) and watchdog.status == "stalled: no video for 2 s"
    assert not watchdog.stalls(110 * S)  # still the same stall: no second WARNING
    watchdog.video(111 * S + 500_000)
    assert not watchdog.stalled
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert messages == [(logging.WARNING, "Gate: no video for 2 s while other streams still "
                                          "arrive"),
                        (logging.INFO, "Gate: video is back after 11.5 s without it")]


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("rtsp_transport", "quic", "rtsp_transport: 'quic' is not one of auto, tcp, udp, http"),
    ("video_stall_s", 0.1, "video_stall_s: 0.1 is outside 0.5..3600"),
])
def test_camera_settings_are_checked(archive_config: Any, key: str, value: object,
                                     problem: str) -> None:
    from sense_plugin.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(problem)):
        archive_config([{"name": "Gate", "source": "rtsp://cam/1", key: value}])


async def test_unreachable_camera_is_not_retried_over_every_transport(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with RecorderThread(f"rtsp://127.0.0.1:{free_port()}/none", tmp_path / "a",
                              segment_s=2, backoff_first_s=0.2) as rec:
        await rec.wait_for(lambda: rec.recorder.status.startswith("error: "))
    assert "error: Connection refused" in rec.statuses
    assert "trying udp" not in caplog.text  # refused: no camera there, whatever the transport
