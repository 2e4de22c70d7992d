"""What the status and the manifest say about an exported file is what ffprobe and a decoder
find in it (tests/oracle.py), on footage made by ffmpeg's CLI: B-frames at the end of the
range, HEVC open GOPs at its start, long GOPs, segment joins."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import pytest
from apiclient import command, export_body, wait_export
from footage import PATTERN, S, segment_archive
from lxml import etree
from oracle import check_export, source_frames
from PIL import Image

from sense_plugin.config import config_from_dict
from sense_plugin.timestamps import format_timestamp

DEV = 9890179877273119875
#: 2026-11-20 10:00:00 UTC.
T0 = 1_795_168_800_000_000


def server_config(tmp_path: Path, root: Path) -> Any:
    return config_from_dict({
        "server": {"serverid": "7015498111931795223", "data_dir": "data"},
        "archive": {"demo": False},
        "devices": [{"deviceid": str(DEV), "name": "Entrance", "archive_dir": str(root),
                     "archive_pattern": PATTERN, "archive_timezone": "UTC"}]},
        base_dir=tmp_path)


async def export_range(client: Any, start_us: int, end_us: int, **fields: Any) -> Any:
    body = export_body([(DEV, format_timestamp(start_us), format_timestamp(end_us))],
                       **fields)
    export_id = int((await command(client, "exportVideo", body=body)).findtext("exportid"))
    status = await wait_export(client, export_id, timeout_s=60)
    assert status.findtext("status") == "COMPLETED", etree.tostring(status).decode()
    return status


#: (footage, start, end) in µs after T0: ends between B-frames, starts just after a CRA's
#: leading pictures, spans a long GOP, crosses joins.
CASES = {
    "bframes-end": ("h264-bframes", 1_300_000, 5_540_000),
    "bframes-end-mid-run": ("h264-bframes", 500_000, 3_210_000),
    "hevc-open-gop-start": ("hevc-open-gop", 2_000_000, 5_500_000),
    "hevc-open-gop-mid": ("hevc-open-gop", 2_400_000, 4_050_000),
    "long-gop": ("h264-long-gop", 4_000_000, 13_500_000),
}


@pytest.mark.parametrize(("source_ext", "fmt"), [("mp4", "mp4"), ("mkv", "mkv"), ("ts", "ts"),
                                                 ("ts", "mp4"), ("mkv", "ts")])
@pytest.mark.parametrize("case", sorted(CASES))
async def test_claims_match_what_the_file_shows(case: str, source_ext: str, fmt: str,
                                                tmp_path: Path,
                                                make_client: Callable[..., Any]) -> None:
    kind, start, end = CASES[case]
    root = tmp_path / "archive"
    segment_s = 10 if kind == "h264-long-gop" else 2  # the segment muxer cuts at keyframes
    made = segment_archive(root, kind, T0, 16 if kind == "h264-long-gop" else 8, segment_s,
                           source_ext)
    truth = source_frames([(path, T0 + i * segment_s * S) for i, path in enumerate(made)])
    client = await make_client(server_config(tmp_path, root))
    status = await export_range(client, T0 + start, T0 + end, format=fmt)
    (verdict,) = check_export(tmp_path / "data", status, requested=(T0 + start, T0 + end),
                              source=truth)
    # the footage's own grid: a keyframe every GOP_S, frames every 1/fps from T0
    gop_us = 10 * S if kind == "h264-long-gop" else S
    assert verdict.frames_us[0] == T0 + start // gop_us * gop_us
    fps = 30 if kind.startswith("hevc") else 25
    off_grid = [t for t in verdict.frames_us
                if abs((t - T0) * fps - round((t - T0) * fps / S) * S) > fps * 1_000]
    assert off_grid == []


async def test_one_gap_tolerance_for_recordings_status_and_manifest(
        tmp_path: Path, make_client: Callable[..., Any]) -> None:
    """Holes of 0.7 s and 0.3 s: getRecordings, the status, the manifest and ffprobe agree on
    which is a gap (the 0.7 s one)."""
    root = tmp_path / "archive"
    segment_archive(root, "h264-bframes", T0, 6, 2, holes_us=(700_000, 300_000))
    client = await make_client(server_config(tmp_path, root))
    start, end = T0 + S, T0 + 6 * S
    rec = await command(client, "getRecordings", deviceid=DEV, starttime=format_timestamp(start),
                        endtime=format_timestamp(end))
    listed = [(g.findtext("starttime"), g.findtext("endtime"))
              for g in rec.iterfind("recordings/gaps/gap")]
    status = await export_range(client, start, end)
    (verdict,) = check_export(tmp_path / "data", status, requested=(start, end))
    assert len(verdict.claim.gaps) == 1
    claimed = [(format_timestamp(s), format_timestamp(e)) for s, e in verdict.claim.gaps]
    assert listed == claimed == [(format_timestamp(T0 + 2 * S), format_timestamp(T0 + 2_700_000))]


@pytest.mark.parametrize("source_ext", ["mp4", "mkv", "ts"])
@pytest.mark.parametrize("kind", ["h264-bframes", "hevc-open-gop"])
async def test_snapshot_shows_and_labels_the_frame_of_the_instant(
        kind: str, source_ext: str, tmp_path: Path, make_client: Callable[..., Any]) -> None:
    """At a keyframe, just after one, mid-GOP and just before a join: the label is the archive
    time of the last frame recorded at or before the instant (the footage's grid)."""
    root = tmp_path / "archive"
    made = segment_archive(root, kind, T0, 6, 2, source_ext)
    truth_rgb = {}
    for i, path in enumerate(made):  # each segment decoded from its top: archive µs → RGB
        with av.open(str(path)) as container:
            frames = list(container.decode(video=0))
        first = frames[0].pts
        for frame in frames:
            assert frame.pts is not None and frame.time_base is not None and first is not None
            at_us = T0 + i * 2 * S + round((frame.pts - first) * frame.time_base * S)
            truth_rgb[at_us] = frame.to_ndarray(format="rgb24").tobytes()
    client = await make_client(server_config(tmp_path, root))
    fps = 30 if kind.startswith("hevc") else 25
    for offset_us in (2_000_000, 2_010_000, 2_500_000, 3_990_000, 4_000_000):
        response = await client.get("/command", params={
            "command": "getSnapshot", "deviceid": str(DEV),
            "time": format_timestamp(T0 + offset_us), "format": "PNG"})
        assert response.content_type == "image/png", (offset_us, await response.text())
        frame = offset_us * fps // S
        if kind.startswith("hevc") and frame % fps == fps - 1:
            # the leading picture before an open-GOP join is stored after the join and
            # decodes only with the GOP before it: the frame before it is shown, and so named
            frame -= 1
        shown_us = T0 + frame * S // fps
        assert response.headers["X-Frame-Time"] == format_timestamp(shown_us), offset_us
        picture = Image.open(io.BytesIO(await response.read())).convert("RGB")
        recorded = min(truth_rgb, key=lambda at: abs(at - shown_us))  # Matroska: ms
        assert abs(recorded - shown_us) <= 1_000, offset_us
        assert picture.tobytes() == truth_rgb[recorded], offset_us  # the recording's frame


@pytest.mark.parametrize("render", ["<width>160</width>", "<fps>2</fps>"])
@pytest.mark.parametrize("kind", ["h264-bframes", "hevc-open-gop"])
async def test_rendered_export_claims_match_the_file(kind: str, render: str, tmp_path: Path,
                                                     make_client: Callable[..., Any]) -> None:
    """A re-encoded export: its first frame is the first recorded at or after the start,
    every frame is at its recorded time, none at or after the end; a range running past the
    recording ends with a trailing gap."""
    root = tmp_path / "archive"
    segment_archive(root, kind, T0, 6, 2, "ts")
    client = await make_client(server_config(tmp_path, root))
    start, end = T0 + 1_990_000, T0 + 7_000_000  # the recording ends at 6 s
    body = export_body([(DEV, format_timestamp(start), format_timestamp(end))]).replace(
        "</export>", f"<render>{render}</render></export>")
    export_id = int((await command(client, "exportVideo", body=body)).findtext("exportid"))
    status = await wait_export(client, export_id, timeout_s=90)
    assert status.findtext("status") == "COMPLETED", etree.tostring(status).decode()
    (verdict,) = check_export(tmp_path / "data", status, requested=(start, end))
    fps = 30 if kind.startswith("hevc") else 25
    first_frame = -(-(start - T0) * fps // S)  # the first frame at or after the start
    assert verdict.frames_us[0] == T0 + first_frame * S // fps
    assert len(verdict.claim.gaps) == 1 and verdict.claim.gaps[0][1] == end
