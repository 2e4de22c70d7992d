"""Cameras this project did not make: GStreamer's RTSP server plays ffmpeg-made files at real
time (tests/rtsp_server.py); the real app records them and exports all three formats over HTTP.

H.264 + G.711 µ-law, H.264 + AAC, H.265: every frame and every audio packet of every export
must decode, and the audio must cover the video.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import corpus
import pytest
from apiclient import command, export_body, wait_export
from livesource import RtspServer, require_gstreamer

from sense_plugin.naming import parse_segment_filename
from sense_plugin.timestamps import format_timestamp, now_us, parse_timestamp

#: mount → (server pipeline kind, corpus case, codec the export's audio must have)
CAMERAS = {
    "pcmu": ("h264-pcmu", corpus.Case("rtsp-pcmu", "h264", "pcm_mulaw", "mkv"), "aac"),
    "aac": ("h264-aac", corpus.Case("rtsp-aac", "h264", "aac", "mp4"), "aac"),
    "hevc": ("h265", corpus.Case("rtsp-hevc", "hevc", "aac", "mp4"), ""),
}


@pytest.fixture
def rtsp_cameras(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The three cameras: mount name → rtsp:// URL, served until the test ends."""
    corpus.require_ffmpeg()
    require_gstreamer()
    mounts = {}
    for mount, (kind, case, audio) in CAMERAS.items():
        clip = corpus.make_clip(case, tmp_path / "clips" / mount, seconds=30, audio=bool(audio))
        mounts[mount] = f"{kind}:{clip}"
    with RtspServer(tmp_path, mounts) as server:
        yield {mount: server.url(mount) for mount in CAMERAS}


def committed(directory: Path) -> list[int]:
    return sorted(t for p in directory.glob("*") if (t := parse_segment_filename(p.name)))


def check_file(path: Path, framecount: int, audio_codec: str) -> None:
    """Decode every packet; frames as counted, dts increasing, audio covering the video."""
    video_dts: list[int] = []
    frames = errors = 0
    audio_us = 0
    with av.open(str(path)) as container:
        assert (container.streams.audio[0].codec_context.name
                if container.streams.audio else "") == audio_codec
        for packet in container.demux():
            if packet.size and packet.stream.type == "video" and packet.dts is not None:
                video_dts.append(packet.dts)
            try:
                decoded = packet.decode()
            except av.FFmpegError:
                errors += 1
                continue
            for frame in decoded:
                if isinstance(frame, av.VideoFrame):
                    frames += 1
                elif isinstance(frame, av.AudioFrame):
                    audio_us += frame.samples * 1_000_000 // frame.sample_rate
    assert errors == 0
    assert frames >= framecount > 0  # frames after the end that B-frames refer to: not counted
    assert frames - framecount <= 2
    assert all(b > a for a, b in zip(video_dts, video_dts[1:], strict=False))
    if audio_codec:
        assert abs(audio_us - framecount * corpus.FRAME_US) <= 300_000, (audio_us, framecount)


async def check_open_segment_counts(client: Any, device: Any) -> None:
    """While recording, getRecordings and getServerStatus reach into the open segment: no
    trailing gap after the last indexed segment (docs/archive.rst)."""
    await asyncio.sleep(1.0)  # the open segment holds at least 0.5 s now
    starts = committed(device.archive_dir)
    root = await command(client, "getRecordings", deviceid=device.device_id,
                         starttime=format_timestamp(starts[0]),
                         endtime=format_timestamp(now_us()))
    intervals = root.findall("recordings/intervals/interval")
    assert len(intervals) == 1
    end_us = parse_timestamp(intervals[0].findtext("endtime"))
    assert end_us >= starts[-1] + 2_400_000  # past the end of the last closed segment
    assert now_us() - end_us < 1_500_000  # up to about the last written frame
    status = await command(client, "getServerStatus", deviceid=device.device_id)
    last = status.findtext("serverstatus/devices/device/lastrecordedimage")
    assert parse_timestamp(last) > starts[-1] + 2_000_000


async def test_rtsp_cameras_record_and_export(
    tmp_path: Path, rtsp_cameras: dict[str, str], archive_config: Any, make_client: Any
) -> None:
    config = archive_config([{"name": m, "source": url} for m, url in rtsp_cameras.items()],
                            segment_seconds=2)
    client = await make_client(config)
    devices = {m: d for m, d in zip(rtsp_cameras, config.devices, strict=True)}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 40
    while any(len(committed(d.archive_dir)) < 3 for d in devices.values()):
        assert loop.time() < deadline, {m: committed(d.archive_dir) for m, d in devices.items()}
        await asyncio.sleep(0.2)
    await check_open_segment_counts(client, devices["aac"])
    ranges = []
    for device in devices.values():
        starts = committed(device.archive_dir)
        ranges.append((device.device_id, format_timestamp(starts[0] + 300_000),
                       format_timestamp(starts[2] + 1_000_000)))
    for fmt in ("mp4", "mkv", "ts"):
        root = await command(client, "exportVideo",
                             body=export_body(ranges, format=fmt, name=f"rtsp-{fmt}"))
        export = await wait_export(client, int(root.findtext("exportid")))
        assert export.findtext("status") == "COMPLETED", export.findtext("description")
        for element, mount in zip(export.findall("devices/device"), devices, strict=True):
            name = element.findtext("files/file/name")
            response = await client.get("/command", params={
                "command": "downloadExportVideo", "exportid": export.findtext("exportid"),
                "file": name})
            assert response.status == 200
            local = tmp_path / f"{mount}.{fmt}"
            local.write_bytes(await response.read())
            check_file(local, int(element.findtext("files/file/framecount")), CAMERAS[mount][2])
