"""How far a segment being recorded reaches on disk (media/follow.py ``recorded_until_us``): an
export whose end is being recorded is cut from the open segment once this passes its end
(docs/evidence.rst, "The end"), so a wrong answer leaves the export waiting.

The reach is read with PyAV and compared with the packets ffprobe lists in the same file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import WriteSegment

from sense_plugin.media.cutspec import SourceSegment
from sense_plugin.media.follow import recorded_until_us

START_US = 1_795_168_800_000_000
US = 1_000_000


def newest_by_ffprobe(path: Path, start_us: int) -> int:
    """The archive time of the newest packet of the stream that lags most, by ffprobe: each
    stream's newest pts, counted from the video stream's start time."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        pytest.skip("ffprobe is not installed")
    shown = json.loads(subprocess.run(
        [ffprobe, "-v", "error", "-show_streams", "-show_packets", "-of", "json", str(path)],
        check=True, capture_output=True, text=True).stdout)
    streams = {s["index"]: s for s in shown["streams"]
               if s["codec_type"] in ("video", "audio")}
    video = next(s for s in streams.values() if s["codec_type"] == "video")
    ref = Fraction(video.get("start_pts", 0)) * Fraction(video["time_base"])
    newest: dict[int, Fraction] = {}
    for pkt in shown["packets"]:
        index = pkt["stream_index"]
        if index in streams and "pts" in pkt and int(pkt.get("size", 0)):
            at = Fraction(pkt["pts"]) * Fraction(streams[index]["time_base"])
            newest[index] = max(newest.get(index, at), at)
    assert set(newest) == set(streams), "every stream has packets"
    return start_us + int((min(newest.values()) - ref) * US)


def test_the_reach_of_a_segment_is_its_newest_packet_every_time(
        tmp_path: Path, write_segment: WriteSegment) -> None:
    """Read again and again (as an export waiting for its end does, every 0.25 s), the reach
    is the newest packet on disk each time: it never reads a stream of the closed file."""
    path = write_segment(tmp_path, START_US, duration_s=3.0)
    expected_us = newest_by_ffprobe(path, START_US)
    assert expected_us > START_US + 2 * US  # the file holds its three seconds
    segment = SourceSegment(str(path), START_US, START_US + 10 * US)
    reaches = [recorded_until_us(segment) for _ in range(30)]
    assert reaches == [expected_us] * 30
