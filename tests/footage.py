"""Footage made by Debian's ``ffmpeg`` CLI for the oracle tests: the encoders' own B-frame,
open-GOP and long-GOP habits, cut by ffmpeg's segment muxer into an archive layout."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ffmpegtools import ffmpeg

from sense_plugin.naming import NamePattern

#: The archive's file names: the UTC time of each segment's first frame.
PATTERN = "%Y%m%dT%H%M%S.%fZ.{ext}"
S = 1_000_000

#: Name → encoder arguments. 25 fps H.264 with three B-frames between references; HEVC with
#: open GOPs (CRA keyframes whose leading pictures reference the GOP before); a 10 s GOP.
KINDS: dict[str, list[str]] = {
    "h264-bframes": ["-r", "25", "-c:v", "libx264", "-preset", "ultrafast", "-bf", "3",
                     "-x264-params", "bframes=3:b-adapt=0:keyint=25:min-keyint=25:scenecut=0"],
    "hevc-open-gop": ["-r", "30", "-c:v", "libx265", "-preset", "ultrafast", "-x265-params",
                      "keyint=30:min-keyint=30:open-gop=1:scenecut=0:bframes=3:log-level=error"],
    "h264-long-gop": ["-r", "25", "-c:v", "libx264", "-preset", "ultrafast", "-bf", "2",
                      "-x264-params", "keyint=250:min-keyint=250:scenecut=0"],
}


def clip(path: Path, kind: str, seconds: int) -> Path:
    """One file of ``seconds`` of ``kind`` footage (160x90), as a camera would stream it."""
    subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=160x90:rate=30", *KINDS[kind], "-pix_fmt", "yuv420p",
                    "-t", str(seconds), str(path)], check=True, timeout=120)
    return path


def segment_archive(root: Path, kind: str, start_us: int, seconds: int, segment_s: int,
                    ext: str = "mp4", holes_us: tuple[int, ...] = ()) -> list[Path]:
    """``seconds`` of ``kind`` footage cut every ``segment_s`` by the segment muxer and named
    after consecutive ``segment_s`` steps from ``start_us`` (:data:`PATTERN`); ``holes_us``:
    a hole this long before segment 1, 2, ... (the names move, the footage is the same)."""
    work = root.parent / f"{root.name}-ffmpeg"
    work.mkdir(parents=True, exist_ok=True)
    muxer = {"mp4": "mp4", "mkv": "matroska", "ts": "mpegts"}[ext]
    subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=160x90:rate=30", *KINDS[kind], "-pix_fmt", "yuv420p",
                    "-t", str(seconds), "-f", "segment", "-segment_time", str(segment_s),
                    "-reset_timestamps", "1", "-segment_format", muxer,
                    str(work / f"seg%03d.{ext}")], check=True, timeout=120)
    pattern = NamePattern(PATTERN, "UTC")
    placed = []
    for i, segment in enumerate(sorted(work.glob(f"seg*.{ext}"))):
        target = root / pattern.format(start_us + i * segment_s * S + sum(holes_us[:i]), ext)
        target.parent.mkdir(parents=True, exist_ok=True)
        placed.append(segment.replace(target))
    return placed
