"""Export kinds over HTTP (docs/exports.rst): snapshots, stop; files reopened with PyAV and
Pillow."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import av
import numpy as np
from apiclient import command, export_body, schema, wait_export
from conftest import API_DEVICES
from lxml import etree
from oracle import check_file
from PIL import Image

from sense_plugin.naming import parse_segment_filename
from sense_plugin.timestamps import format_compact, format_timestamp, parse_timestamp

STEADY, GAPPY = API_DEVICES["Steady"], API_DEVICES["Gappy"]


def snapshot_body(*devices: tuple[int, str], **fields: str) -> str:
    items = "".join(f"<device><deviceid>{d}</deviceid><starttime>{t}</starttime></device>"
                    for d, t in devices)
    extra = "".join(f"<{k}>{v}</{k}>" for k, v in {"output": "snapshot", **fields}.items())
    text = f"<export><devices>{items}</devices>{extra}</export>"
    assert schema("export-request").validate(etree.fromstring(text))
    return text


def source_frame(directory: Path, instant_us: int) -> tuple[np.ndarray, int]:
    """Decoded independently: RGB of the last frame with archive time ≤ the instant."""
    starts = sorted((parse_segment_filename(p.name) or 0, p) for p in directory.iterdir())
    start_us, path = [(s, p) for s, p in starts if s <= instant_us][-1]
    shown: tuple[np.ndarray, int] | None = None
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        first = None
        for frame in container.decode(video):
            first = frame.pts if first is None else first
            at_us = start_us + int((frame.pts - first) * video.time_base * 1_000_000)
            if at_us > instant_us:
                break
            shown = (frame.to_ndarray(format="rgb24"), at_us)
    assert shown is not None
    return shown


def export_dir(config: Any, export: etree._Element) -> Path:
    return (config.server.export_roots[0] / (export.findtext("path") or "unnamed")
            / export.findtext("exportid"))


async def test_png_snapshot_is_the_decoded_source_frame_at_the_instant(
        client: Any, make_config: Any, api_archive: dict[str, Any]) -> None:
    instant = api_archive["start_us"] + 13_370_000
    root = await command(client, "exportVideo", body=snapshot_body(
        (STEADY, format_timestamp(instant)), format="png", path="snaps"))
    export = await wait_export(client, int(root.findtext("exportid")), timeout_s=20)
    assert export.findtext("status") == "COMPLETED"
    assert export.findtext("output") == "snapshot" and export.findtext("format") == "png"
    pixels, frame_us = source_frame(api_archive["dirs"]["Steady"], instant)
    assert instant - 200_000 < frame_us <= instant  # within one frame (demo: 10 fps)
    file_el = export.find("devices/device/files/file")
    name = file_el.findtext("name")
    assert name == f"Steady_{STEADY}_{format_compact(frame_us)}.png"
    assert parse_timestamp(file_el.findtext("starttime")) == frame_us // 1000 * 1000
    assert file_el.findtext("framecount") == "1"
    path = export_dir(make_config(), export) / name
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == file_el.findtext("sha256")
    assert int(file_el.findtext("size")) == len(data)
    assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), pixels)
    manifest = etree.parse(str(path.parent / "manifest.xml")).getroot()
    assert schema("manifest").validate(manifest), schema("manifest").error_log
    assert manifest.findtext("devices/device/file/name") == name
    assert manifest.findtext("output") == "snapshot"
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([name, "manifest.sig",
                                                                  "manifest.xml"])


async def test_jpeg_snapshots_of_two_devices_and_remove(
        client: Any, make_config: Any, api_archive: dict[str, Any]) -> None:
    instant = api_archive["start_us"] + 45_000_000
    root = await command(client, "exportVideo", body=snapshot_body(
        (STEADY, format_timestamp(instant)), (GAPPY, format_timestamp(instant))))
    export = await wait_export(client, int(root.findtext("exportid")), timeout_s=20)
    directory = export_dir(make_config(), export)
    for device, label in zip(export.findall("devices/device"), ("Steady", "Gappy"), strict=True):
        name = device.findtext("files/file/name")
        assert name.startswith(f"{label}_") and name.endswith(".jpg")
        pixels, _ = source_frame(api_archive["dirs"][label], instant)
        with Image.open(directory / name) as image:
            assert image.format == "JPEG"
            shown = np.asarray(image.convert("RGB")).astype(int)
        assert shown.shape == pixels.shape and np.abs(shown - pixels).mean() < 6  # lossy
    await command(client, "exportVideo", action="remove", exportid=export.findtext("exportid"))
    assert not directory.exists()


async def test_snapshot_in_a_gap_is_minus_9_naming_the_nearest_times(
        client: Any, api_archive: dict[str, Any]) -> None:
    base = api_archive["start_us"]
    root = await command(client, "exportVideo", expect=-9, body=snapshot_body(
        (GAPPY, format_timestamp(base + 30_000_000))))
    description = root.findtext("description") or ""
    assert "recording ends at" in description and "resumes at" in description
    assert format_timestamp(base + 40_000_000)[:19] in description
    listing = await command(client, "getExportVideoStatus")
    assert listing.find("exports").get("count") == "0"


def decoded_times(path: Path) -> list[int]:
    """Presentation times (µs of file time) of every frame that decodes."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        return [int(f.pts * video.time_base * 1_000_000) for f in container.decode(video)]


async def test_stop_keeps_what_was_written_and_removes_the_queued(
        make_client: Any, make_config: Any, api_archive: dict[str, Any]) -> None:
    config = make_config(export={"max_concurrent_jobs": 1})
    client = await make_client(config)
    base = api_archive["start_us"]
    start, end = format_timestamp(base), format_timestamp(base + 60_000_000)
    mkv = API_DEVICES["Matroska"]
    body = (f"<export><devices><device><deviceid>{STEADY}</deviceid><starttime>{start}"
            f"</starttime><endtime>{end}</endtime></device><device><deviceid>{mkv}</deviceid>"
            f"<starttime>{start}</starttime><endtime>{end}</endtime></device></devices>"
            "<bandwidth>60</bandwidth><path>stopped</path></export>")
    export_id = int((await command(client, "exportVideo", body=body)).findtext("exportid"))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while True:  # until the first device has written something
        export = (await command(client, "getExportVideoStatus", exportid=export_id)).find(
            "exports/export")
        if int(export.findtext("devices/device/bytes")) > 0:
            break
        assert loop.time() < deadline
        await asyncio.sleep(0.05)
    root = await command(client, "exportVideo", action="stop", exportid=export_id)
    assert root.findtext("status") == "COMPLETED"
    export = await wait_export(client, export_id)
    first, second = export.findall("devices/device")
    assert first.findtext("status") == "COMPLETED" and first.findtext("stopped") == "true"
    assert second.findtext("status") == "REMOVED" and second.findtext("stopped") == "false"
    stopped_end = parse_timestamp(first.findtext("endtime"))
    assert base < stopped_end < base + 60_000_000
    file_el = first.find("files/file")
    last = parse_timestamp(file_el.findtext("endtime"))
    assert last <= stopped_end
    path = export_dir(config, export) / file_el.findtext("name")
    times = decoded_times(path)
    assert len(times) == int(file_el.findtext("framecount")) > 0
    check_file(path, file_el, requested=(base, stopped_end))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == file_el.findtext("sha256")
    manifest = etree.parse(str(path.parent / "manifest.xml")).getroot()
    assert schema("manifest").validate(manifest), schema("manifest").error_log
    assert manifest.findtext("devices/device/stopped") == "true"
    again = f"<export><action>stop</action><exportid>{export_id}</exportid></export>"
    root = await command(client, "exportVideo", body=again, expect=-22)
    assert "COMPLETED" in root.findtext("description")
    await command(client, "exportVideo", action="stop", exportid=99999, expect=-57)


async def test_stop_of_an_export_that_wrote_nothing_is_removed(
        make_client: Any, make_config: Any, api_archive: dict[str, Any]) -> None:
    client = await make_client(make_config(export={"max_concurrent_jobs": 1}))
    base = api_archive["start_us"]
    devices = [(STEADY, format_timestamp(base), format_timestamp(base + 60_000_000))]
    busy = await command(client, "exportVideo", body=export_body(devices, bandwidth="60"))
    queued = await command(client, "exportVideo", body=export_body(devices, path="q"))
    root = await command(client, "exportVideo", action="stop",
                         exportid=queued.findtext("exportid"))
    assert root.findtext("status") == "REMOVED"
    await command(client, "exportVideo", action="remove", exportid=busy.findtext("exportid"))


async def test_audio_false_exports_video_only(make_client: Any, archive_config: Any,
                                              make_segments: Any) -> None:
    from conftest import ARCHIVE_DEVICE_IDS, MEDIA_T0_US

    paths = make_segments(audio=True)
    config = archive_config(devices=[{"name": "Mic", "archive_dir": str(paths[0].parent)}])
    client = await make_client(config)
    devices = [(ARCHIVE_DEVICE_IDS[0], format_timestamp(MEDIA_T0_US + 500_000),
                format_timestamp(MEDIA_T0_US + 4_500_000))]
    streams = {}
    for audio in ("FALSE", "1"):
        root = await command(client, "exportVideo", body=export_body(devices, audio=audio,
                                                                      path=f"a{audio}"))
        export = await wait_export(client, int(root.findtext("exportid")))
        assert export.findtext("audio") == ("false" if audio == "FALSE" else "true")
        path = export_dir(config, export) / export.findtext("devices/device/files/file/name")
        with av.open(str(path)) as container:
            streams[audio] = (len(container.streams.video), len(container.streams.audio))
    assert streams == {"FALSE": (1, 0), "1": (1, 1)}


def frame_digests(path: Path) -> list[str]:
    """A digest of every decoded frame's pixels, in presentation order."""
    with av.open(str(path)) as container:
        frames = [(f.pts, hashlib.sha256(f.to_ndarray(format="gray").tobytes()).hexdigest())
                  for f in container.decode(container.streams.video[0])]
    return [digest for _, digest in sorted(frames)]


async def split_export(client: Any, config: Any, device: int, start_us: int, end_us: int,
                       **fields: str) -> tuple[etree._Element, list[Path]]:
    devices = [(device, format_timestamp(start_us), format_timestamp(end_us))]
    root = await command(client, "exportVideo", body=export_body(devices, **fields))
    export = await wait_export(client, int(root.findtext("exportid")), timeout_s=60)
    assert export.findtext("status") == "COMPLETED", etree.tostring(export)
    names = [f.findtext("name") for f in export.findall("devices/device/files/file")]
    return export, [export_dir(config, export) / n for n in names]


async def test_split_parts_are_under_the_limit_and_concatenate_to_the_whole(
        make_client: Any, archive_config: Any, make_segments: Any) -> None:
    from conftest import ARCHIVE_DEVICE_IDS, MEDIA_T0_US

    paths = make_segments(end_us=MEDIA_T0_US + 20_000_000, segment_s=4.0, width=320,
                          height=240, fps=25, gop_frames=12, bitrate_bps=3_000_000, audio=True)
    config = archive_config(devices=[{"name": "Big", "archive_dir": str(paths[0].parent)}])
    client = await make_client(config)
    device, t0, t1 = ARCHIVE_DEVICE_IDS[0], MEDIA_T0_US + 300_000, MEDIA_T0_US + 19_000_000
    _, (whole,) = await split_export(client, config, device, t0, t1, path="whole")
    export, parts = await split_export(client, config, device, t0, t1, path="parts",
                                       maxfilesize="1")
    assert export.findtext("maxfilesize") == "1"
    assert len(parts) >= 2 and whole.stat().st_size > 1_000_000
    assert [p.name.rsplit("_", 1)[1] for p in parts] == [f"part{n:03d}.mp4"
                                                         for n in range(1, len(parts) + 1)]
    files = export.findall("devices/device/files/file")
    for path, file_el in zip(parts, files, strict=True):
        check_file(path, file_el, requested=(t0, t1) if path == parts[-1] else None)
        data = path.read_bytes()
        assert len(data) <= 1_000_000 and file_el.findtext("oversize") is None
        assert hashlib.sha256(data).hexdigest() == file_el.findtext("sha256")
        assert format_compact(parse_timestamp(file_el.findtext("starttime")))[:15] in path.name
        with av.open(str(path)) as container:
            assert container.streams.audio and container.streams.video
    starts = [parse_timestamp(f.findtext("starttime")) for f in files]
    assert starts == sorted(starts)
    joined = [d for p in parts for d in frame_digests(p)]
    assert joined == frame_digests(whole)
    assert sum(int(f.findtext("framecount")) for f in files) == len(joined)
    manifest = etree.parse(str(parts[0].parent / "manifest.xml")).getroot()
    assert schema("manifest").validate(manifest), schema("manifest").error_log
    assert [f.findtext("name") for f in manifest.findall("devices/device/file")] == \
        [p.name for p in parts]
    response = await client.get("/command", params={
        "command": "downloadExportVideo", "exportid": export.findtext("exportid"),
        "file": parts[1].name})
    assert response.status == 200 and await response.read() == parts[1].read_bytes()


async def test_a_gop_larger_than_the_limit_is_kept_whole_and_marked(
        make_client: Any, archive_config: Any, make_segments: Any) -> None:
    from conftest import ARCHIVE_DEVICE_IDS, MEDIA_T0_US

    paths = make_segments(end_us=MEDIA_T0_US + 20_000_000, segment_s=10.0, width=1280,
                          height=720, fps=25, gop_frames=250, bitrate_bps=8_000_000)
    config = archive_config(devices=[{"name": "Long", "archive_dir": str(paths[0].parent)}])
    client = await make_client(config)
    export, parts = await split_export(client, config, ARCHIVE_DEVICE_IDS[0], MEDIA_T0_US,
                                       MEDIA_T0_US + 20_000_000, maxfilesize="1")
    files = export.findall("devices/device/files/file")
    assert len(parts) == 2  # one GOP each (a keyframe every 10 s)
    sizes = [p.stat().st_size for p in parts]
    assert any(size > 1_000_000 for size in sizes), sizes
    assert [f.findtext("oversize") for f in files] == [
        "true" if size > 1_000_000 else None for size in sizes]
    manifest = etree.parse(str(parts[0].parent / "manifest.xml")).getroot()
    assert schema("manifest").validate(manifest), schema("manifest").error_log
    assert "true" in [f.findtext("oversize") for f in manifest.findall("devices/device/file")]


async def test_keepalive_stops_an_export_nobody_polls(
        make_client: Any, make_config: Any, api_archive: dict[str, Any]) -> None:
    client = await make_client(make_config())
    base = api_archive["start_us"]
    devices = [(STEADY, format_timestamp(base), format_timestamp(base + 60_000_000))]
    polled = await command(client, "exportVideo", body=export_body(
        devices, bandwidth="60", keepalive="1", path="polled"))
    forgotten = await command(client, "exportVideo", body=export_body(
        devices, bandwidth="60", keepalive="1", path="forgotten"))
    loop = asyncio.get_running_loop()
    until = loop.time() + 2.5
    while loop.time() < until:  # only the first export is asked for
        root = await command(client, "getExportVideoStatus", exportid=polled.findtext("exportid"))
        assert root.findtext("exports/export/status") == "SYNCING"
        await asyncio.sleep(0.3)
    export = await wait_export(client, int(forgotten.findtext("exportid")))
    device = export.find("devices/device")
    assert export.findtext("status") == "COMPLETED" and export.findtext("keepalive") == "1"
    assert device.findtext("stopped") == "true"
    await command(client, "exportVideo", action="remove", exportid=polled.findtext("exportid"))
