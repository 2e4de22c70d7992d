"""Rendered exports over HTTP against the real server: the burned-in time of every checked
frame is its archive time, a solid mask carries no detail, the manifest records the rendering,
and a width above the source fails the device with -22."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from apiclient import command, export_body, schema, wait_export
from conftest import API_DEVICES
from lxml import etree

from sense_plugin.export.verify import verify_directory
from sense_plugin.media.overlay import TextPainter, split_planes
from sense_plugin.media.renderoptions import Rect, Timestamp
from sense_plugin.timestamps import format_timestamp, parse_timestamp

STEADY = API_DEVICES["Steady"]
US = 1_000_000
STYLE = Timestamp(fmt="%H:%M:%S", size=0.15, position="bottom-right", color=(255, 255, 0))
SOLID = Rect(0.05, 0.05, 0.4, 0.4)
RENDER = ("<timestamp><format>%H:%M:%S</format><position>bottom-right</position>"
          "<color>#ffff00</color><size>0.15</size></timestamp>"
          "<mask><x>0.05</x><y>0.05</y><w>0.4</w><h>0.4</h><style>solid</style></mask>"
          "<quality>high</quality>")


async def run_export(client: Any, archive: dict[str, Any], render: str) -> etree._Element:
    base = archive["start_us"]
    span = (STEADY, format_timestamp(base + 12 * US), format_timestamp(base + 15 * US))
    body = export_body([span], path="rendered", render=render)
    root = await command(client, "exportVideo", body=body)
    return await wait_export(client, int(root.findtext("exportid")))


def source_frame(directory: Path, archive_us: int) -> Any:
    """The yuv420p array of the recorded frame shown at ``archive_us`` (names: start times)."""
    starts = sorted((int(datetime.strptime(p.name[:-5], "%Y%m%dT%H%M%S.%f").replace(
        tzinfo=UTC).timestamp() * US), p) for p in directory.glob("*.mp4"))
    start_us, path = [s for s in starts if s[0] <= archive_us][-1]
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            assert frame.pts is not None and frame.time_base is not None
            if start_us + int(frame.pts * frame.time_base * US) >= archive_us:
                return frame.to_ndarray(format="yuv420p")
    raise AssertionError("no source frame")


async def test_rendered_export_shows_archive_time_and_masks(
        client: Any, make_config: Any, api_archive: dict[str, Any]) -> None:
    export = await run_export(client, api_archive, RENDER)
    assert export.findtext("status") == "COMPLETED", etree.tostring(export).decode()
    listed = export.find("devices/device/files/file")
    directory = make_config().server.export_roots[0] / "rendered" / export.findtext("exportid")
    manifest = etree.parse(str(directory / "manifest.xml")).getroot()
    assert schema("manifest").validate(manifest), schema("manifest").error_log
    rendering = manifest.find("rendering")
    assert rendering.findtext("method").startswith("rendered")
    options = {o.get("name"): o.text for o in rendering.iterfind("option")}
    assert options["timestamp.format"] == "%H:%M:%S" and options["quality"] == "high"
    assert options["mask1"] == "solid x=0.05 y=0.05 w=0.4 h=0.4"

    first_us = parse_timestamp(listed.findtext("starttime"))
    checked = 0
    with av.open(str(directory / listed.findtext("name"))) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == int(listed.findtext("framecount"))
    for frame in frames[::9]:
        assert frame.pts is not None and frame.time_base is not None
        width, height = frame.width, frame.height
        luma = frame.to_ndarray(format="yuv420p")[:height].astype(int)
        archive_us = first_us + int(frame.pts * frame.time_base * US)
        sx, sy, sw, sh = SOLID.pixels(width, height)
        assert luma[sy + 2:sy + sh - 2, sx + 2:sx + sw - 2].astype(float).var() < 1.0
        expected = {}
        # wrong: hours, minutes and seconds all differ (frames are 64x64: few text pixels)
        for label, shift in (("right", 0), ("wrong", 3 * 3600 + 37 * 60 + 17)):
            text = datetime.fromtimestamp(archive_us / US + shift, UTC).strftime("%H:%M:%S")
            planes = split_planes(source_frame(api_archive["dirs"]["Steady"], archive_us).copy(),
                                  width, height)
            TextPainter(STYLE, width, height).paint(planes, text)
            expected[label] = planes.y.astype(int)
        differ = np.abs(expected["right"] - expected["wrong"]) > 40
        assert differ.sum() > 20
        errors = {k: float(np.abs(v - luma)[differ].mean()) for k, v in expected.items()}
        assert errors["right"] < 15 and errors["wrong"] > 4 * errors["right"], errors
        checked += 1
    assert checked >= 3


async def test_stream_copy_manifest_says_so_and_width_above_source_fails(
        client: Any, make_config: Any, api_archive: dict[str, Any]) -> None:
    base = api_archive["start_us"]
    span = (STEADY, format_timestamp(base + 12 * US), format_timestamp(base + 15 * US))
    refused = await command(client, "exportVideo", expect=-22, body=export_body(
        [span], path="rendered", render="<width>4096</width>"))  # at admission
    assert "render/width" in (refused.findtext("description") or "")
    root = await command(client, "exportVideo", body=export_body(
        [(STEADY, format_timestamp(base + 2 * US), format_timestamp(base + 4 * US))],
        path="copied"))
    copied = await wait_export(client, int(root.findtext("exportid")))
    directory = make_config().server.export_roots[0] / "copied" / copied.findtext("exportid")
    manifest = etree.parse(str(directory / "manifest.xml")).getroot()
    assert manifest.findtext("rendering/method").startswith("stream copy: the original")
    assert manifest.find("rendering/option") is None


async def test_subtitle_timestamps_one_cue_per_archive_second(
        client: Any, make_config: Any, api_archive: dict[str, Any]) -> None:
    if shutil.which("ffprobe") is None:
        pytest.skip("ffprobe not installed (apt-get install ffmpeg)")
    base = api_archive["start_us"]
    for device, fmt, render in ((STEADY, "mp4", None), (API_DEVICES["Matroska"], "mkv", None),
                                (STEADY, "mp4", "<quality>low</quality>")):
        span = (device, format_timestamp(base + 12 * US), format_timestamp(base + 16 * US))
        extra = {} if render is None else {"render": render}
        root = await command(client, "exportVideo", body=export_body(
            [span], path=f"subs-{fmt}", format=fmt, timestamps="subtitle", **extra))
        export = await wait_export(client, int(root.findtext("exportid")))
        assert export.findtext("status") == "COMPLETED", etree.tostring(export).decode()
        listed = export.find("devices/device/files/file")
        first_us = parse_timestamp(listed.findtext("starttime"))
        path = (make_config().server.export_roots[0] / f"subs-{fmt}"
                / export.findtext("exportid") / listed.findtext("name"))
        assert verify_directory(path.parent).ok  # size and SHA-256 as recorded
        probe = json.loads(subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "s", "-show_streams",
             "-show_packets", "-show_data", "-of", "json", str(path)],
            capture_output=True, text=True, check=True).stdout)
        assert probe["streams"][0]["codec_name"] == ("mov_text" if fmt == "mp4" else "subrip")
        # the MP4 muxer ends each cue with an empty sample (2 bytes: text length 0)
        cues = [c for c in probe["packets"] if int(c["size"]) > 2]
        assert 4 <= len(cues) <= 6, cues
        with av.open(str(path)) as container:
            sub = container.streams.subtitles[0]
            texts = [bytes(p) for p in container.demux(sub) if p.size > 2]
        for cue, text in zip(cues, texts, strict=True):
            start_s = float(cue["pts_time"])
            second = (first_us + int(start_s * US)) // US  # archive second shown at the cue
            shown = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%d %H:%M:%S").encode()
            assert shown in text, (cue, text)
            assert 0 < float(cue["duration_time"]) <= 1.0 + 1e-6, cue
        starts = [float(c["pts_time"]) for c in cues]
        steps = [b - a for a, b in zip(starts[1:], starts[2:], strict=False)]
        assert steps and all(step == pytest.approx(1.0, abs=0.11) for step in steps), starts


async def test_render_options_a_snapshot_cannot_take_are_refused_naming_them(
        client: Any, api_archive: dict[str, Any]) -> None:
    base = api_archive["start_us"]
    span = (STEADY, format_timestamp(base + 2 * US), format_timestamp(base + 4 * US))
    for tag in ("fps>5</fps", "codec>h265</codec", "quality>low</quality"):
        body = export_body([span], output="snapshot", format="jpg", render=f"<{tag}>")
        root = await command(client, "exportVideo", body=body, expect=-22)
        assert f"render/{tag.split('>')[0]} does not apply to a snapshot" in root.findtext(
            "description")
    listed = await command(client, "getExportVideoStatus")
    assert listed.find("exports").get("count") == "0"
