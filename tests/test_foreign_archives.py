"""Archives written by other recorders (docs/archive.rst): each documented layout, made by Debian's
ffmpeg CLI, indexed and exported over HTTP with the right archive times."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from apiclient import command, export_body, wait_export
from ffmpegtools import ENCODE, ffmpeg, ffmpeg_segments, frame_digests
from lxml import etree
from oracle import check_export, source_frames

from sense_plugin.api.keys import ARCHIVE
from sense_plugin.archive.watch import ArchiveWatcher
from sense_plugin.config import config_from_dict
from sense_plugin.naming import NamePattern
from sense_plugin.timestamps import format_timestamp, now_us, parse_timestamp

DEV = 9890179877273119875
#: 2026-11-20 10:00:00 UTC.
T0 = 1_795_168_800_000_000
S = 1_000_000

#: (pattern, zone, extension as written on disk): the README's examples.
LAYOUTS = {
    "today": ("%Y%m%dT%H%M%S.%fZ.{ext}", "UTC", "mp4"),
    "ffmpeg-strftime": ("cam_%Y%m%d-%H%M%S.{ext}", "Europe/Berlin", "MKV"),
    "frigate": ("%Y-%m-%d/%H/front_door/%M.%S.{ext}", "UTC", "mp4"),
    "per-day": ("%Y-%m-%d/entrance-%H%M%S.{ext}", "America/New_York", "ts"),
    "millis-mov": ("cam1_%Y%m%dT%H%M%S.%fZ.{ext}", "UTC", "mov"),
}


def server_config(tmp_path: Path, device: dict[str, Any], **archive: Any) -> Any:
    data = {"server": {"serverid": "7015498111931795223", "data_dir": "data"},
            "archive": {"demo": False, **archive},
            "devices": [{"deviceid": str(DEV), "name": "Entrance", **device}]}
    return config_from_dict(data, base_dir=tmp_path)


def lay_out(segments: list[Path], root: Path, pattern: NamePattern, ext: str,
            start_us: int) -> list[Path]:
    """Move ffmpeg's numbered segments to the layout's names for consecutive seconds."""
    placed = []
    for i, segment in enumerate(segments):
        target = root / pattern.format(start_us + i * S, ext)
        target.parent.mkdir(parents=True, exist_ok=True)
        placed.append(segment.replace(target))
    return placed


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
async def test_layout_is_indexed_and_exported(layout: str, tmp_path: Path,
                                              make_client: Callable[..., Any]) -> None:
    text, zone, ext = LAYOUTS[layout]
    pattern = NamePattern(text, zone)
    root = tmp_path / "foreign"
    sources = lay_out(ffmpeg_segments(tmp_path / "ffmpeg", 4, ext.lower()), root, pattern,
                      ext, T0)
    (root / "notes.txt").write_text("not video, not reported")
    config = server_config(tmp_path, {"archive_dir": str(root), "archive_pattern": text,
                                      "archive_timezone": zone})
    client = await make_client(config)

    rec = await command(client, "getRecordings", deviceid=DEV,
                        starttime=format_timestamp(T0 - 60 * S),
                        endtime=format_timestamp(T0 + 60 * S))
    intervals = [(i.findtext("starttime"), i.findtext("endtime"))
                 for i in rec.iterfind("recordings/intervals/interval")]
    assert intervals == [(format_timestamp(T0), format_timestamp(T0 + 4 * S))]

    body = export_body([(DEV, format_timestamp(T0 + S + S // 2),
                         format_timestamp(T0 + 3 * S + S // 2))])
    export_id = int((await command(client, "exportVideo", body=body)).findtext("exportid"))
    status = await wait_export(client, export_id)
    assert status.findtext("status") == "COMPLETED"
    check_export(tmp_path / "data", status, requested=(T0 + S + S // 2, T0 + 3 * S + S // 2),
                 source=source_frames([(p, T0 + i * S) for i, p in enumerate(sources)]))
    file = status.find("devices/device/files/file")
    assert file.findtext("starttime") == format_timestamp(T0 + S)  # keyframe at or before
    (out,) = glob.glob(str(tmp_path / "data" / "exports" / "**" / file.findtext("name")),
                       recursive=True)
    # The export starts at the keyframe of second 1 and ends before 3.5 s: frames 10..34
    # of the source, in order (segments 1, 2 and half of 3).
    source = [d for path in sources for d in frame_digests(path)]
    assert frame_digests(Path(out)) == source[10:35]


async def recorded(client: Any, start_us: int, end_us: int) -> list[tuple[str, str]]:
    rec = await command(client, "getRecordings", deviceid=DEV,
                        starttime=format_timestamp(start_us), endtime=format_timestamp(end_us))
    return [(i.findtext("starttime"), i.findtext("endtime"))
            for i in rec.iterfind("recordings/intervals/interval")]


async def test_segments_another_program_writes_are_picked_up_live(
        tmp_path: Path, make_client: Callable[..., Any],
        caplog: pytest.LogCaptureFixture) -> None:
    """ffmpeg -strftime 1 records in real time (local Berlin names) while the server runs."""
    root = tmp_path / "live"
    root.mkdir()
    rescan_s = 1.0
    config = server_config(tmp_path, {"archive_dir": str(root),
                                      "archive_pattern": "cam_%Y%m%d-%H%M%S.{ext}",
                                      "archive_timezone": "Europe/Berlin"}, rescan_s=rescan_s)
    client = await make_client(config)
    began_us = now_us()
    proc = await asyncio.create_subprocess_exec(
        ffmpeg(), "-hide_banner", "-loglevel", "error", "-re", *ENCODE, "-t", "7",
        "-f", "segment", "-segment_time", "2", "-strftime", "1", "-reset_timestamps", "1",
        str(root / "cam_%Y%m%d-%H%M%S.mp4"), env={**os.environ, "TZ": "Europe/Berlin"})
    window = (began_us - 5 * S, began_us + 60 * S)
    seen_while_recording = []
    while proc.returncode is None:
        seen_while_recording = await recorded(client, *window)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 0.2)
    assert proc.returncode == 0
    finished_us = now_us()
    # Segments closed while ffmpeg still wrote the next one were indexed during the recording.
    assert seen_while_recording, "nothing was indexed while ffmpeg was recording"
    files = sorted(root.glob("cam_*.mp4"))
    assert len(files) >= 3
    deadline_us = finished_us + int((rescan_s + 4) * S)  # rescan_s, plus a slow shared machine
    while True:
        intervals = await recorded(client, *window)
        total = sum(parse_timestamp(e) - parse_timestamp(s) for s, e in intervals)
        if total >= 6 * S or now_us() > deadline_us:
            break
        await asyncio.sleep(0.1)
    assert total >= 6 * S, intervals  # all 7 s (names are whole seconds: gaps < 1 s join)
    first = parse_timestamp(intervals[0][0])
    assert began_us - 2 * S <= first <= began_us + 3 * S  # Berlin names read back as UTC
    archive = client.app[ARCHIVE]
    assert (await archive.skipped_hint(DEV)) == ""
    assert "skipping" not in caplog.text  # no file was taken while ffmpeg still wrote it


async def test_without_change_events_the_periodic_rescan_finds_new_files(
        tmp_path: Path, make_client: Callable[..., Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A network share sends no inotify events: the rescan every rescan_s / 2 is the backstop."""
    monkeypatch.setattr(ArchiveWatcher, "start", lambda self: False)
    text, zone, ext = LAYOUTS["frigate"]
    pattern = NamePattern(text, zone)
    root = tmp_path / "share"
    root.mkdir()
    staged = lay_out(ffmpeg_segments(tmp_path / "ffmpeg", 3, ext), tmp_path / "staging",
                     pattern, ext, T0)
    config = server_config(tmp_path, {"archive_dir": str(root), "archive_pattern": text},
                           rescan_s=0.5)
    client = await make_client(config)
    assert await recorded(client, T0, T0 + 60 * S) == []
    for path in staged:  # another program copies finished segments in (as Frigate moves them)
        target = root / path.relative_to(tmp_path / "staging")
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-p", str(path), str(target)], check=True)
    deadline_us = now_us() + 5 * S
    while await recorded(client, T0, T0 + 60 * S) != [(format_timestamp(T0),
                                                        format_timestamp(T0 + 3 * S))]:
        assert now_us() < deadline_us, await recorded(client, T0, T0 + 60 * S)
        await asyncio.sleep(0.1)
    next(root.rglob("00.01.mp4")).unlink()  # a deleted segment leaves the index too
    archive = client.app[ARCHIVE]
    deadline_us = now_us() + 5 * S
    while [s.start_us for s in await archive.segments(DEV, T0, T0 + 60 * S)] != [T0,
                                                                                T0 + 2 * S]:
        assert now_us() < deadline_us
        await asyncio.sleep(0.1)


async def test_a_file_deleted_after_indexing_gives_a_gap_or_a_clear_failure(tmp_path: Path,
                                                         make_client: Callable[..., Any]) -> None:
    text, zone, ext = LAYOUTS["ffmpeg-strftime"]
    root = tmp_path / "foreign"
    lay_out(ffmpeg_segments(tmp_path / "ffmpeg", 4, "mkv"), root, NamePattern(text, zone), ext,
            T0)
    config = server_config(tmp_path, {"archive_dir": str(root), "archive_pattern": text,
                                      "archive_timezone": zone}, rescan_s=3600)
    client = await make_client(config)
    client.app[ARCHIVE]._rescanner.stop()  # type: ignore[union-attr]  # no event: stale index
    next(root.glob("cam_*-110002.MKV")).unlink()  # the other program deletes second 2
    body = export_body([(DEV, format_timestamp(T0), format_timestamp(T0 + 4 * S))])
    export_id = int((await command(client, "exportVideo", body=body)).findtext("exportid"))
    status = await wait_export(client, export_id)
    device = status.find("devices/device")
    if status.findtext("status") == "FAILED":  # today's cutter: a clear device failure
        assert "cam_20261120-110002.MKV" in device.findtext("description")
        return
    assert status.findtext("status") == "COMPLETED", etree.tostring(device)
    gaps = device.find("files/file/gaps")
    assert gaps.get("count") == "1"
    assert gaps.findtext("gap/endtime") == format_timestamp(T0 + 3 * S)
