"""An export whose end is being recorded (docs/evidence.rst, "The end"), over HTTP against a
server recording a real source, judged by the oracle (tests/oracle.py).

The recorder writes 120 s segments, so the segment holding "now" stays open for the whole test:
the export must be cut from the file being recorded, not wait for it to close.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apiclient import command, export_body, schema, wait_export
from conftest import WriteSegment
from ffmpegtools import ffmpeg
from footage import S, segment_archive
from livesource import DEVICE, live_client
from lxml import etree
from oracle import check_export
from test_evidence_truth import T0, export_range, server_config
from test_live_ends import live_body

from sense_plugin.config import config_from_dict
from sense_plugin.naming import parse_segment_filename
from sense_plugin.timestamps import format_timestamp, now_us


def closed_segments(data: Path) -> list[int]:
    """Starts of the segments the recorder has closed (the final names)."""
    found = [parse_segment_filename(p.name) for p in (data / "archive").rglob("*")
             if p.is_file() and not p.name.startswith(".")]
    return sorted(s for s in found if s is not None)


async def test_an_export_ending_now_is_cut_from_the_segment_being_recorded(
        make_client: Any, tmp_path: Path, write_segment: WriteSegment) -> None:
    client = await live_client(make_client, tmp_path, write_segment, 150.0, segment_s=120)
    await asyncio.sleep(4)
    end_us = now_us()
    start_us = end_us - 3 * S
    root = await command(client, "exportVideo", body=export_body(
        [(DEVICE, format_timestamp(start_us), format_timestamp(end_us))]))
    # the segment closes 120 s after the recording began: waiting for it would time out here
    export = await wait_export(client, int(root.findtext("exportid") or 0), timeout_s=40)
    assert export.findtext("status") == "COMPLETED", etree.tostring(export)
    assert closed_segments(tmp_path / "data") == [], "the segment holding the end was closed"
    (verdict,) = check_export(tmp_path / "data", export, requested=(start_us, end_us))
    assert not verdict.claim.gaps, verdict.claim.gaps  # recorded to the end: not short
    assert verdict.frames_us[0] <= start_us


async def test_gaps_say_why_in_status_manifest_and_store(
        tmp_path: Path, make_client: Any) -> None:
    """A hole in the recording and a range running past it: every gap names its reason in the
    status and the signed manifest (both valid by their XSDs), and again once the store has
    reloaded the export."""
    root = tmp_path / "archive"
    segment_archive(root, "h264-bframes", T0, 6, 2, holes_us=(700_000,))
    start, end = T0 + S, T0 + 8 * S  # the recording ends 0.7 s after 6 s
    first = await make_client(server_config(tmp_path, root))
    status = await export_range(first, start, end)
    (verdict,) = check_export(tmp_path / "data", status, requested=(start, end))
    assert len(verdict.claim.gaps) == 2
    reasons = [g.get("reason") for g in status.iterfind("devices/device/files/file/gaps/gap")]
    assert reasons == ["no recording"] * 2
    (manifest_path,) = (tmp_path / "data").rglob("manifest.xml")
    manifest = etree.parse(str(manifest_path)).getroot()
    assert schema("manifest").validate(manifest), schema("manifest").error_log
    assert [g.get("reason") for g in manifest.iterfind(".//gaps/gap")] == reasons
    # a new server over the same data directory reads the export back from the store
    await first.close()
    again = await make_client(server_config(tmp_path, root))
    reread = await command(again, "getExportVideoStatus",
                           exportid=status.findtext("exportid"))
    assert [g.get("reason") for g in reread.iterfind(".//files/file/gaps/gap")] == reasons


async def test_a_live_export_ends_from_the_segment_being_recorded(
        make_client: Any, tmp_path: Path, write_segment: WriteSegment) -> None:
    """A live export (cut while the recording grows) whose end passes inside the open segment
    completes from it, without waiting for the segment to close."""
    client = await live_client(make_client, tmp_path, write_segment, 150.0, segment_s=120)
    start_us = now_us()
    end_us = start_us + 4 * S
    root = await command(client, "exportVideo", body=live_body(start_us, end_us))
    export = await wait_export(client, int(root.findtext("exportid") or 0), timeout_s=40)
    assert export.findtext("status") == "COMPLETED", etree.tostring(export)
    assert closed_segments(tmp_path / "data") == [], "the segment holding the end was closed"
    (verdict,) = check_export(tmp_path / "data", export, requested=(start_us, end_us))
    assert not verdict.claim.gaps, verdict.claim.gaps


@pytest.fixture
def stalling_camera(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    """A camera as a named pipe fed MPEG-TS at real time by ffmpeg; SIGSTOP on the ffmpeg
    process makes it stop delivering while the stream stays open."""
    fifo = tmp_path / "camera.ts"
    os.mkfifo(fifo)
    feeder = subprocess.Popen(
        [ffmpeg(), "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i",
         "testsrc2=size=160x90:rate=25", "-c:v", "libx264", "-g", "25", "-bf", "0",
         "-pix_fmt", "yuv420p", "-f", "mpegts", "-y", str(fifo)])
    try:
        yield fifo, feeder
    finally:
        feeder.send_signal(signal.SIGCONT)
        feeder.kill()
        feeder.wait(10)


async def stalling_client(make_client: Any, tmp_path: Path, fifo: Path, segment_s: int) -> Any:
    """A server recording only the stalling camera, in segments of ``segment_s``."""
    data = {"server": {"serverid": "7015498111931795223", "data_dir": "data"},
            "archive": {"demo": False, "segment_seconds": segment_s},
            "devices": [{"deviceid": str(DEVICE), "name": "Stalling", "source": str(fifo)}]}
    return await make_client(config_from_dict(data, base_dir=tmp_path))


async def test_a_camera_that_stops_delivering_leaves_a_trailing_gap_that_says_why(
        make_client: Any, tmp_path: Path,
        stalling_camera: tuple[Path, subprocess.Popen[bytes]]) -> None:
    fifo, feeder = stalling_camera
    client = await stalling_client(make_client, tmp_path, fifo, segment_s=1)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while len(closed_segments(tmp_path / "data")) < 3:
        assert loop.time() < deadline, "the camera is not recorded"
        await asyncio.sleep(0.1)
    feeder.send_signal(signal.SIGSTOP)  # the camera stalls; its stream stays open
    end_us = now_us()
    start_us = end_us - 3 * S
    root = await command(client, "exportVideo", body=export_body(
        [(DEVICE, format_timestamp(start_us), format_timestamp(end_us))]))
    export = await wait_export(client, int(root.findtext("exportid") or 0), timeout_s=40)
    assert export.findtext("status") == "COMPLETED", etree.tostring(export)
    (verdict,) = check_export(tmp_path / "data", export, requested=(start_us, end_us))
    assert len(verdict.claim.gaps) == 1 and verdict.claim.gaps[0][1] == end_us // 1000 * 1000
    (gap,) = export.iterfind("devices/device/files/file/gaps/gap")
    assert gap.get("reason", "").startswith("the recording had not reached the end")


async def test_a_rendered_live_export_is_cut_once_the_recorder_passes_its_end(
        make_client: Any, tmp_path: Path, write_segment: WriteSegment) -> None:
    """A rendered live export waits without a worker; it is cut from the open segment as soon
    as the recorder has passed its end, not when that segment closes."""
    client = await live_client(make_client, tmp_path, write_segment, 150.0, segment_s=120)
    start_us = now_us()
    end_us = start_us + 3 * S
    body = live_body(start_us, end_us, render="<width>32</width>")
    root = await command(client, "exportVideo", body=body)
    export = await wait_export(client, int(root.findtext("exportid") or 0), timeout_s=40)
    assert export.findtext("status") == "COMPLETED", etree.tostring(export)
    assert closed_segments(tmp_path / "data") == [], "the segment holding the end was closed"
    (verdict,) = check_export(tmp_path / "data", export, requested=(start_us, end_us))
    assert not verdict.claim.gaps, verdict.claim.gaps


async def test_an_export_waiting_for_its_end_to_be_recorded_is_removed_at_once(
        make_client: Any, tmp_path: Path,
        stalling_camera: tuple[Path, subprocess.Popen[bytes]]) -> None:
    """The camera stalls inside a 120 s segment: an export ending now waits for the recording
    to reach its end (at most a segment length). Removed meanwhile, it stops waiting and is
    REMOVED, long before that wait would have ended."""
    fifo, feeder = stalling_camera
    client = await stalling_client(make_client, tmp_path, fifo, segment_s=120)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while (await command(client, "getRecordings", deviceid=DEVICE)).find(".//interval") is None:
        assert loop.time() < deadline, "the camera is not recorded"
        await asyncio.sleep(0.1)
    await asyncio.sleep(2)  # some recording before the range starts
    feeder.send_signal(signal.SIGSTOP)  # the segment stays open; nothing more reaches it
    await asyncio.sleep(1)
    end_us = now_us()
    root = await command(client, "exportVideo", body=export_body(
        [(DEVICE, format_timestamp(end_us - 2 * S), format_timestamp(end_us))]))
    export_id = int(root.findtext("exportid") or 0)
    syncing = await wait_export(client, export_id, until=("SYNCING", "COMPLETED", "FAILED"))
    assert syncing.findtext("status") == "SYNCING", etree.tostring(syncing)
    assert closed_segments(tmp_path / "data") == []
    removal = asyncio.create_task(command(client, "exportVideo", action="remove",
                                          exportid=export_id))
    # the wait for the end would last 123 s: the removal must not sit behind it
    export = await wait_export(client, export_id, timeout_s=40)
    await removal
    assert export.findtext("status") == "REMOVED", etree.tostring(export)
