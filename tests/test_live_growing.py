"""A live export's file is readable while it grows (docs/exports.rst, media/follow.py): a reader
opens
``<final name>.part`` mid-export with PyAV and decodes frames; the final file is that file
finished, and its SHA-256 is the manifest's."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from pathlib import Path
from typing import Any

import av
import pytest
from apiclient import command, wait_export
from conftest import WriteSegment
from livesource import DEVICE, live_client
from lxml import etree

from sense_plugin.timestamps import format_timestamp, now_us

S = 1_000_000


def decoded(path: Path) -> list[tuple[int, str]]:
    """(pts µs, pixel digest) of every frame that decodes, up to an unfinished tail."""
    frames = []
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        try:
            for frame in container.decode(video):
                frames.append((int(frame.pts * video.time_base * S),
                               hashlib.sha256(frame.to_ndarray(format="gray").tobytes())
                               .hexdigest()))
        except av.FFmpegError:
            pass  # a fragment being written
    return sorted(frames)


@pytest.mark.parametrize("fmt", ["mp4", "mkv"])
async def test_the_growing_file_is_readable_mid_export_and_becomes_the_final_file(
        make_client: Any, tmp_path: Path, write_segment: WriteSegment, fmt: str) -> None:
    client = await live_client(make_client, tmp_path, write_segment, 60.0)
    start_us = now_us()
    body = (f"<export><devices><device><deviceid>{DEVICE}</deviceid><starttime>"
            f"{format_timestamp(start_us)}</starttime><endtime>"
            f"{format_timestamp(start_us + 6 * S)}</endtime></device></devices>"
            f"<mode>live</mode><format>{fmt}</format><keepalive>0</keepalive></export>")
    export_id = (await command(client, "exportVideo", body=body)).findtext("exportid")
    directory = tmp_path / "data" / "exports" / "unnamed" / str(export_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    early: list[tuple[int, str]] = []
    while len(early) < 10:  # a second of video (10 fps), read while the export runs
        growing = list(directory.glob(f"*.{fmt}.part"))
        if growing and growing[0].stat().st_size:
            # before its first fragment the file does not open yet (the header waits for it)
            with contextlib.suppress(av.FFmpegError):
                early = decoded(growing[0])
        status = (await command(client, "getExportVideoStatus", exportid=export_id)).find(
            "exports/export")
        assert status.findtext("status") == "SYNCING", etree.tostring(status)
        assert loop.time() < deadline, "the growing file never held a second of video"
        await asyncio.sleep(0.3)
    assert now_us() < start_us + 6 * S  # read before the range's end
    export = await wait_export(client, int(export_id), timeout_s=20)
    assert export.findtext("status") == "COMPLETED", etree.tostring(export)
    file_el = export.find("devices/device/files/file")
    final = directory / file_el.findtext("name")
    assert not list(directory.glob("*.part"))
    assert hashlib.sha256(final.read_bytes()).hexdigest() == file_el.findtext("sha256")
    manifest = etree.parse(str(directory / "manifest.xml")).getroot()
    assert manifest.findtext("devices/device/file/sha256") == file_el.findtext("sha256")
    whole = decoded(final)
    assert whole[:len(early)] == early  # what the reader saw is the start of the final file
    assert len(whole) >= 50 and len(whole) == int(file_el.findtext("framecount"))


async def test_remove_during_a_growing_live_export_deletes_its_file(
        make_client: Any, tmp_path: Path, write_segment: WriteSegment) -> None:
    client = await live_client(make_client, tmp_path, write_segment, 60.0)
    body = (f"<export><devices><device><deviceid>{DEVICE}</deviceid></device></devices>"
            "<mode>live</mode><keepalive>0</keepalive></export>")
    export_id = (await command(client, "exportVideo", body=body)).findtext("exportid")
    directory = tmp_path / "data" / "exports" / "unnamed" / str(export_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not any(p.stat().st_size for p in directory.glob("*.part")):
        assert loop.time() < deadline, "nothing was written"
        await asyncio.sleep(0.2)
    root = await command(client, "exportVideo", action="remove", exportid=export_id)
    assert root.findtext("status") == "REMOVED"
    assert not directory.exists()
    export = (await command(client, "getExportVideoStatus", exportid=export_id)).find(
        "exports/export")
    assert export.findtext("status") == "REMOVED"


def test_a_cut_waiting_past_its_end_still_reports_progress(
        tmp_path: Path, write_segment: WriteSegment) -> None:
    """The parent's stall watchdog needs changing figures while the last segment is awaited."""
    import threading

    from sense_plugin.media.cutspec import CutRequest, SourceRange, SourceSegment
    from sense_plugin.media.follow import Feed, follow_cut

    t0 = now_us() - 3 * S
    clip = write_segment(tmp_path / "seg", t0, duration_s=2.0)
    feed = Feed()
    feed.add([SourceSegment(str(clip), t0, t0 + 2 * S)], False)
    reports: list[int] = []
    threading.Timer(2.0, lambda: feed.add([], True)).start()  # "no more segments", later
    result = follow_cut(CutRequest(SourceRange((), t0, t0 + 2_500_000),
                                   str(tmp_path / "out.mp4")), feed, lambda: False,
                        on_progress=lambda done, _: reports.append(done))
    assert result.frame_count == 20
    waiting = [r for r in reports if r > 2_500_000]  # reported after the range's end
    assert len(waiting) >= 2 and waiting == sorted(set(waiting))
