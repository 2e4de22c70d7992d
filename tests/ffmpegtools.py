"""Test helpers: archives written by Debian's ``ffmpeg`` CLI (not by this project), and frame
fingerprints to compare an export with its source."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import av
import pytest

FFMPEG_HINT = "Debian's ffmpeg CLI is missing: apt-get install -y ffmpeg"
#: Tiny clips: 160x90, 10 fps, a keyframe every second, 1 s segments.
ENCODE = ["-f", "lavfi", "-i", "testsrc2=size=160x90:rate=10", "-c:v", "libx264",
          "-preset", "ultrafast", "-g", "10", "-keyint_min", "10", "-sc_threshold", "0",
          "-pix_fmt", "yuv420p"]
MUXERS = {"mp4": "mp4", "mkv": "matroska", "ts": "mpegts", "mov": "mov"}


def ffmpeg() -> str:
    """Path of the ffmpeg CLI, or skip the test with a one-line hint."""
    path = shutil.which("ffmpeg")
    if path is None:
        pytest.skip(FFMPEG_HINT)
    return path


def ffmpeg_segments(directory: Path, count: int, ext: str, segment_s: int = 1) -> list[Path]:
    """``count`` consecutive segments cut by ffmpeg's segment muxer (numbered names)."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", *ENCODE,
                    "-t", str(count * segment_s), "-f", "segment", "-segment_time",
                    str(segment_s), "-reset_timestamps", "1", "-segment_format", MUXERS[ext],
                    str(directory / f"seg%03d.{ext}")], check=True, timeout=60)
    return sorted(directory.glob(f"seg*.{ext}"))


def set_creation_time(path: Path, iso_utc: str) -> None:
    """Rewrite ``path`` with ffmpeg (stream copy) so its container states ``creation_time``."""
    tmp = path.with_name(f"tmp-{path.name}")
    subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-c",
                    "copy", "-metadata", f"creation_time={iso_utc}", "-f",
                    MUXERS[path.suffix.lstrip(".").lower()], str(tmp)], check=True, timeout=30)
    os.replace(tmp, path)


def frame_digests(path: Path) -> list[str]:
    """MD5 of the luma plane of every decoded video frame, in presentation order."""
    with av.open(str(path)) as container:
        return [hashlib.md5(bytes(frame.planes[0])).hexdigest()
                for frame in container.decode(container.streams.video[0])]
