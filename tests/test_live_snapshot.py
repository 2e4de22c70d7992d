"""``mode=live`` + snapshot, and getSnapshot without a time: the newest frame (docs/exports.rst),
read
from the segment being recorded (10 s segments here: the newest complete one is older)."""

from __future__ import annotations

import asyncio
import hashlib
import io
from pathlib import Path
from typing import Any

import av
import numpy as np
from apiclient import command, schema, wait_export
from conftest import WriteSegment
from livesource import DEVICE, live_client
from lxml import etree
from PIL import Image

from sense_plugin.archive.writer import final_name_of_partial
from sense_plugin.naming import parse_segment_filename
from sense_plugin.timestamps import format_timestamp, now_us, parse_timestamp

S = 1_000_000
#: A keyframe every 0.5 s: fragmented MP4 on disk ends at most one GOP and a frame before now.
BOUND_US = S


def frame_of_partial(directory: Path, frame_us: int) -> np.ndarray:
    """RGB of the frame at ``frame_us`` in the segment being recorded, decoded here."""
    (partial,) = [p for p in directory.iterdir() if final_name_of_partial(p.name)]
    start_us = parse_segment_filename(final_name_of_partial(partial.name) or "") or 0
    with av.open(str(partial)) as container:
        video = container.streams.video[0]
        first = None
        try:
            for frame in container.decode(video):
                first = frame.pts if first is None else first
                at_us = start_us + int((frame.pts - first) * video.time_base * S)
                if abs(at_us - frame_us) < 1000:
                    return frame.to_ndarray(format="rgb24")
        except av.FFmpegError:
            pass  # the unfinished tail
    raise AssertionError(f"no frame at {format_timestamp(frame_us)} in {partial.name}")


async def test_a_live_snapshot_is_the_newest_recorded_frame(
        make_client: Any, tmp_path: Path, write_segment: WriteSegment) -> None:
    client = await live_client(make_client, tmp_path, write_segment, 60.0, segment_s=10)
    await asyncio.sleep(2.5)  # well inside the first segment: none is complete yet
    asked_us = now_us()
    body = (f"<export><devices><device><deviceid>{DEVICE}</deviceid></device></devices>"
            "<mode>live</mode><output>snapshot</output><format>png</format>"
            "<keepalive>0</keepalive></export>")
    assert schema("export-request").validate(etree.fromstring(body))
    root = await command(client, "exportVideo", body=body)
    export = await wait_export(client, int(root.findtext("exportid")), timeout_s=20)
    assert export.findtext("status") == "COMPLETED", etree.tostring(export)
    file_el = export.find("devices/device/files/file")
    frame_us = parse_timestamp(file_el.findtext("starttime"))
    assert asked_us - BOUND_US <= frame_us <= now_us(), (format_timestamp(asked_us),
                                                         format_timestamp(frame_us))
    path = tmp_path / "data" / "exports" / "unnamed" / export.findtext("exportid") / \
        file_el.findtext("name")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == file_el.findtext("sha256")
    archive_dir = next((tmp_path / "data").rglob(".*.rec.part")).parent
    shown = np.asarray(Image.open(path).convert("RGB"))
    assert np.array_equal(shown, frame_of_partial(archive_dir, frame_us))

    asked_us = now_us()
    response = await client.get("/command", params={"command": "getSnapshot",
                                                    "deviceid": str(DEVICE)})
    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "no-cache"  # the newest frame changes
    shown_us = parse_timestamp(response.headers["X-Frame-Time"])
    assert asked_us - BOUND_US <= shown_us <= now_us()
    with Image.open(io.BytesIO(await response.read())) as image:
        assert image.format == "JPEG" and image.size == (64, 64)
