"""Archives written by other recorders (SPEC §12): each documented layout, made by Debian's
ffmpeg CLI, indexed and exported over HTTP with the right archive times."""

from __future__ import annotations

import glob
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from apiclient import command, export_body, wait_export
from ffmpegtools import ffmpeg_segments, frame_digests

from sense_plugin.archive.naming import NamePattern
from sense_plugin.config import config_from_dict
from sense_plugin.timestamps import format_timestamp

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
    file = status.find("devices/device/files/file")
    assert file.findtext("starttime") == format_timestamp(T0 + S)  # keyframe at or before
    (out,) = glob.glob(str(tmp_path / "data" / "exports" / "**" / file.findtext("name")),
                       recursive=True)
    # The export starts at the keyframe of second 1 and ends before 3.5 s: frames 10..34
    # of the source, in order (segments 1, 2 and half of 3).
    source = [d for path in sources for d in frame_digests(path)]
    assert frame_digests(Path(out)) == source[10:35]
