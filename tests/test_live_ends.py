"""How a live export ends (docs/exports.rst), over HTTP against a server recording a real source.

The source is a clip played at real time by the recorder (``source = <file>``, 1 s segments),
so a few seconds of live range cost a few seconds. The clip's length decides whether the
camera drops out: a long clip records without a break; a 2 s clip ends, the recorder
reconnects after its backoff (1 s, then 2 s) and the archive has gaps.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import av
from apiclient import command, schema, wait_export
from conftest import WriteSegment
from livesource import DEVICE, live_client
from lxml import etree

from sense_plugin.timestamps import format_timestamp, now_us, parse_timestamp

S = 1_000_000
#: One segment plus a frame: how far the file may end from the range's end.
TOLERANCE_US = S + 100_000


def live_body(start_us: int, end_us: int | None = None, **fields: Any) -> str:
    end = f"<endtime>{format_timestamp(end_us)}</endtime>" if end_us else ""
    extra = "".join(f"<{k}>{v}</{k}>" for k, v in {"mode": "live", **fields}.items())
    text = (f"<export><devices><device><deviceid>{DEVICE}</deviceid><starttime>"
            f"{format_timestamp(start_us)}</starttime>{end}</device></devices>{extra}</export>")
    assert schema("export-request").validate(etree.fromstring(text))
    return text


def frame_times(path: Path) -> list[int]:
    """File times (µs) of every decoded frame."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        return sorted(int(f.pts * video.time_base * S) for f in container.decode(video))


def checked_file(tmp_path: Path, export: etree._Element) -> tuple[Path, etree._Element]:
    """The device's file, its hash and the signed manifest checked; (path, manifest device)."""
    file_el = export.find("devices/device/files/file")
    directory = tmp_path / "data" / "exports" / (export.findtext("path") or "unnamed") / \
        (export.findtext("exportid") or "")
    path = directory / (file_el.findtext("name") or "")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == file_el.findtext("sha256")
    manifest = etree.parse(str(directory / "manifest.xml")).getroot()
    assert schema("manifest").validate(manifest), schema("manifest").error_log
    return path, manifest.find("devices/device")


async def test_a_future_endtime_ends_when_the_recording_passes_it(
        make_client: Any, tmp_path: Path, write_segment: WriteSegment) -> None:
    client = await live_client(make_client, tmp_path, write_segment, 60.0)
    start_us = now_us()
    end_us = start_us + 3 * S
    root = await command(client, "exportVideo", body=live_body(start_us, end_us, keepalive=0))
    export = await wait_export(client, int(root.findtext("exportid")), timeout_s=20)
    device = export.find("devices/device")
    assert export.findtext("status") == "COMPLETED", etree.tostring(export)
    assert device.findtext("stopped") == "false"
    assert now_us() >= end_us  # it waited for the recording
    path, manifest_device = checked_file(tmp_path, export)
    times = frame_times(path)
    file_el = device.find("files/file")
    first, last = (parse_timestamp(file_el.findtext(k)) for k in ("starttime", "endtime"))
    assert start_us - TOLERANCE_US <= first <= start_us + 100_000
    assert end_us - TOLERANCE_US <= last < end_us
    assert abs((times[-1] - times[0]) - (last - first)) <= 100_000
    assert manifest_device.findtext("stopped") is None  # written only when stopped


async def test_max_live_s_ends_a_live_export_without_endtime(
        make_client: Any, tmp_path: Path, write_segment: WriteSegment) -> None:
    client = await live_client(make_client, tmp_path, write_segment, 60.0, max_live_s=3)
    start_us = now_us()
    root = await command(client, "exportVideo", body=live_body(start_us, keepalive=0))
    export_id = int(root.findtext("exportid"))
    pending = (await command(client, "getExportVideoStatus", exportid=export_id)).find(
        "exports/export/devices/device")
    planned_end = parse_timestamp(pending.findtext("endtime"))
    # the wire shows milliseconds: the planned end is truncated to the millisecond
    assert start_us // 1000 * 1000 + 3 * S <= planned_end <= now_us() + 3 * S
    export = await wait_export(client, export_id, timeout_s=20)
    assert export.findtext("status") == "COMPLETED", etree.tostring(export)
    path, _ = checked_file(tmp_path, export)
    times = frame_times(path)
    first = parse_timestamp(export.findtext("devices/device/files/file/starttime"))
    last = parse_timestamp(export.findtext("devices/device/files/file/endtime"))
    # the file starts at the keyframe at or before the start (up to a GOP early) and shows
    # nothing at or after the planned end; its span is the one the status claims
    assert planned_end - TOLERANCE_US <= last < planned_end
    assert first <= start_us + TOLERANCE_US
    assert abs((times[-1] - times[0]) - (last - first)) < 1000
    assert times[-1] - times[0] >= 3 * S - 2 * TOLERANCE_US


async def test_keepalive_ends_a_live_export_nobody_polls(
        make_client: Any, tmp_path: Path, write_segment: WriteSegment) -> None:
    client = await live_client(make_client, tmp_path, write_segment, 60.0)
    start_us = now_us()
    root = await command(client, "exportVideo", body=live_body(start_us, keepalive=1))
    await asyncio.sleep(3.0)  # nobody asks: stopped about 1-1.5 s after the start
    export = await wait_export(client, int(root.findtext("exportid")), timeout_s=20)
    device = export.find("devices/device")
    assert export.findtext("status") == "COMPLETED", etree.tostring(export)
    assert device.findtext("stopped") == "true" and export.findtext("keepalive") == "1"
    end_us = parse_timestamp(device.findtext("endtime"))
    assert start_us + S <= end_us <= start_us + 3 * S  # not at max_live_s (3600 s)
    path, manifest_device = checked_file(tmp_path, export)
    assert manifest_device.findtext("stopped") == "true"
    assert frame_times(path)[-1] <= end_us - start_us + TOLERANCE_US


async def test_a_camera_that_drops_out_keeps_the_gap_and_does_not_end_early(
        make_client: Any, tmp_path: Path, write_segment: WriteSegment) -> None:
    """A 2 s clip: recorded, ended, reconnected after 1 s, again after 2 s: gaps in range.

    ``stall_s`` = 2: a cut waiting for the recording reports progress all the same."""
    client = await live_client(make_client, tmp_path, write_segment, 2.0, stall_s=2)
    start_us = now_us()
    end_us = start_us + 8 * S
    root = await command(client, "exportVideo", body=live_body(start_us, end_us, keepalive=0))
    export = await wait_export(client, int(root.findtext("exportid")), timeout_s=30)
    assert export.findtext("status") == "COMPLETED", etree.tostring(export)
    assert now_us() >= end_us
    device = export.find("devices/device")
    assert device.findtext("stopped") == "false"
    gaps = device.findall("files/file/gaps/gap")
    assert gaps, etree.tostring(device)
    path, manifest_device = checked_file(tmp_path, export)
    assert len(manifest_device.findall(".//gap")) == len(gaps)
    file_el = device.find("files/file")
    last = parse_timestamp(file_el.findtext("endtime"))
    assert last >= end_us - 3 * S  # recorded after the drop-outs: it did not end at the first
    times = frame_times(path)
    steps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert max(steps) >= 900_000  # the gap stays a gap in the file's timestamps
