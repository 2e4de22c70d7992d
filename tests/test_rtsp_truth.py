"""Cameras with B-frames and HEVC open GOPs (ffmpeg-made clips served by GStreamer's RTSP
server): the recorder's files and the exports of them say what the oracle finds in them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apiclient import command, export_body, wait_export
from footage import clip
from livesource import RtspServer, require_gstreamer
from oracle import check_export, decoded_shown, ffprobe_shown
from test_rtsp import committed

from sense_plugin.naming import parse_segment_filename
from sense_plugin.timestamps import format_timestamp

#: mount → (rtsp_server.py kind, footage kind)
CAMERAS = {"bframes": ("h264", "h264-bframes"), "opengop": ("h265", "hevc-open-gop")}


@pytest.fixture
def cameras(tmp_path: Path) -> Iterator[dict[str, str]]:
    """mount → rtsp:// URL of 30 s clips, served in real time until the test ends."""
    require_gstreamer()
    mounts = {mount: f"{kind}:{clip(tmp_path / f'{mount}.mp4', footage, 30)}"
              for mount, (kind, footage) in CAMERAS.items()}
    with RtspServer(tmp_path, mounts) as server:
        yield {mount: server.url(mount) for mount in CAMERAS}

async def test_recordings_and_exports_of_bframe_and_open_gop_cameras(
        tmp_path: Path, cameras: dict[str, str], archive_config: Any, make_client: Any) -> None:
    config = archive_config([{"name": m, "source": url} for m, url in cameras.items()],
                            segment_seconds=2)
    client = await make_client(config)
    devices = dict(zip(cameras, config.devices, strict=True))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 40
    while any(len(committed(d.archive_dir)) < 4 for d in devices.values()):
        assert loop.time() < deadline, {m: committed(d.archive_dir) for m, d in devices.items()}
        await asyncio.sleep(0.2)
    for mount, device in devices.items():
        # the recorder's own files: named after, and stating, their first shown frame
        for segment in sorted(p for p in device.archive_dir.iterdir()
                              if p.is_file() and not p.name.startswith(".")):
            named_us = parse_segment_filename(segment.name)
            probed = ffprobe_shown(segment)
            assert named_us is not None and probed.creation_us is not None
            assert abs(probed.creation_us - named_us) <= 1_000, (mount, segment.name)
            assert len(decoded_shown(segment).times_us) == len(probed.times_us)
        starts = committed(device.archive_dir)
        # from the very first recorded frame, and from mid-GOP, to an end between B-frames
        for start_us, end_us in ((starts[0] - 1_000_000, starts[2] + 1_017_000),
                                 (starts[1] + 480_000, starts[3] + 250_000)):
            root = await command(client, "exportVideo", body=export_body(
                [(device.device_id, format_timestamp(start_us), format_timestamp(end_us))]))
            export = await wait_export(client, int(root.findtext("exportid")), timeout_s=60)
            assert export.findtext("status") == "COMPLETED", export.findtext(
                "devices/device/description")
            check_export(tmp_path / "data", export, requested=(start_us, end_us))
