"""The timed-text track of archive time (media/subtitles.py), read back by PyAV and ffprobe."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import av
import pytest

from sense_plugin.media.subtitles import TimestampTrack
from tests.conftest import MEDIA_T0_US, MakeSegments

US = 1_000_000
MUXERS = {"mp4": "mp4", "mkv": "matroska"}


def copy_with_track(source: Path, out: Path, fmt: str, archive_start_us: int) -> int:
    """Stream-copy ``source`` into ``out`` with the track; returns the number of cues."""
    with av.open(str(source)) as inp, av.open(str(out), "w", format=MUXERS[fmt]) as output:
        vin = inp.streams.video[0]
        vout = output.add_stream_from_template(vin)
        track = TimestampTrack(output, fmt)
        end_us = 0
        for packet in inp.demux(vin):
            if not packet.size or packet.pts is None or packet.time_base is None:
                continue
            t_us = int(packet.pts * packet.time_base * US)
            track.frame(archive_start_us + t_us, t_us)
            packet.stream = vout
            output.mux(packet)
            end_us = t_us + int((packet.duration or 0) * packet.time_base * US)
        track.close(end_us)
        return track.cues


def cues(path: Path) -> list[tuple[int, int, str]]:
    """(start ms, duration ms, text) of every non-empty cue, as PyAV demuxes them."""
    found = []
    with av.open(str(path)) as container:
        stream = container.streams.subtitles[0]
        for packet in container.demux(stream):
            data = bytes(packet)
            text = data[2:] if stream.codec_context.name == "mov_text" else data
            if text and packet.pts is not None and packet.time_base is not None:
                found.append((int(packet.pts * packet.time_base * 1000),
                              int((packet.duration or 0) * packet.time_base * 1000),
                              text.decode()))
    return found


@pytest.mark.parametrize("fmt", ["mp4", "mkv"])
def test_one_cue_per_archive_second(make_segments: MakeSegments, tmp_path: Path,
                                    fmt: str) -> None:
    source = make_segments(segment_s=4.0, end_us=MEDIA_T0_US + 4 * US)[0]
    out = tmp_path / f"out.{fmt}"
    # the file's first frame shows archive time 10:00:00.500
    assert copy_with_track(source, out, fmt, MEDIA_T0_US + 500_000) == 5
    assert cues(out) == [
        (0, 500, "2026-11-20 10:00:00"),
        (500, 1000, "2026-11-20 10:00:01"),
        (1500, 1000, "2026-11-20 10:00:02"),
        (2500, 1000, "2026-11-20 10:00:03"),
        (3500, 500, "2026-11-20 10:00:04"),
    ]
    with av.open(str(out)) as container:  # the video is still the stream copy
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.subtitles[0].codec_context.name in ("mov_text", "srt", "subrip")


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs Debian's ffmpeg (ffprobe)")
def test_ffprobe_reads_the_cue_times(make_segments: MakeSegments, tmp_path: Path) -> None:
    source = make_segments(segment_s=4.0, end_us=MEDIA_T0_US + 4 * US)[0]
    out = tmp_path / "out.mp4"
    copy_with_track(source, out, "mp4", MEDIA_T0_US)
    text = subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-map", "0:s", "-f", "srt",
                           "-"], capture_output=True, text=True, check=True).stdout
    assert "00:00:01,000 --> 00:00:02,000" in text and "2026-11-20 10:00:01" in text
    assert text.count("-->") == 4
