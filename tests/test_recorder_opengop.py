"""The recorder on an HEVC open-GOP camera (docs/evidence.rst, "The recorder's own files"): every
segment is named after its first shown frame, its keyframe, not after the leading pictures
stored after that keyframe, judged against the camera's own pictures.

GStreamer's RTSP server plays an ffmpeg-made libx265 clip (keyframe every second, open GOPs, so
each keyframe after the first is a CRA followed by leading pictures) from its start to each
client. The clip's pictures, identified by their luma MD5, give each recorded frame's place
in the clip; one camera clock means one constant archive time - clip time for every segment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apiclient import command, export_body, wait_export
from footage import clip
from livesource import RtspServer, require_gstreamer
from oracle import check_export, decoded_shown, source_frames
from test_rtsp import committed

from sense_plugin.naming import parse_segment_filename
from sense_plugin.timestamps import format_timestamp

#: Two archive times of one picture may differ by this much (90 kHz RTP clock, rounding).
SLACK_US = 1_000


@pytest.fixture
def opengop_camera(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(rtsp:// URL, the clip it plays from its start to each client, in real time)."""
    require_gstreamer()
    played = clip(tmp_path / "opengop.mp4", "hevc-open-gop", 30)
    with RtspServer(tmp_path, {"cam": f"h265:{played}"}) as server:
        yield server.url("cam"), played

async def test_open_gop_segments_are_named_after_their_keyframe(
        tmp_path: Path, opengop_camera: tuple[str, Path], archive_config: Any,
        make_client: Any) -> None:
    url, clip = opengop_camera
    clip_us = source_frames([(clip, 0)])  # picture → its time in the clip
    config = archive_config([{"name": "cam", "source": url}], segment_seconds=2)
    client = await make_client(config)
    (device,) = config.devices
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 40
    while len(committed(device.archive_dir)) < 4:
        assert loop.time() < deadline, committed(device.archive_dir)
        await asyncio.sleep(0.2)
    segments = sorted(p for p in device.archive_dir.iterdir()
                      if p.is_file() and not p.name.startswith("."))
    offsets = {}  # segment → its name minus the clip time of its first shown picture
    for segment in segments:
        named_us = parse_segment_filename(segment.name)
        first = decoded_shown(segment).digests[0]
        assert named_us is not None and first in clip_us, segment.name
        offsets[segment.name] = named_us - clip_us[first]
    # the first segment starts at the clip's IDR (no leading pictures): its name is the truth
    camera_us = offsets[segments[0].name]
    assert {n: o - camera_us for n, o in offsets.items() if abs(o - camera_us) > SLACK_US} == {}
    # an export across CRA joins shows each picture at the time the camera showed it
    recorded = {digest: camera_us + at_us for digest, at_us in clip_us.items()}
    start_us = parse_segment_filename(segments[1].name)
    end_us = parse_segment_filename(segments[3].name)
    assert start_us is not None and end_us is not None
    root = await command(client, "exportVideo", body=export_body(
        [(device.device_id, format_timestamp(start_us), format_timestamp(end_us + 500_000))]))
    export = await wait_export(client, int(root.findtext("exportid") or 0), timeout_s=60)
    assert export.findtext("status") == "COMPLETED", export.findtext(
        "devices/device/description")
    check_export(tmp_path / "data", export, requested=(start_us, end_us + 500_000),
                 source=recorded)
