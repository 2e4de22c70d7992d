"""Footage this project did not make: clips encoded by Debian's ``ffmpeg`` CLI, split into
archive segments by ffmpeg's segment muxer, and an independent reader (``ffprobe``) of what the
source holds. Nothing here imports ``sense_plugin`` except the segment naming.

Every clip is 160x90 at 25 fps, 6 s long, a keyframe each second, cut into 2 s segments; the
truth about a range comes from ``ffprobe`` on the unsplit clip.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from sense_plugin.naming import segment_filename

S = 1_000_000
#: 2026-11-20 10:00:00 UTC: archive time of every clip's first frame.
T0 = 1_795_168_800_000_000
FPS = 25
FRAME_US = S // FPS
CLIP_S = 6
SEGMENT_S = 2

_X264_BF = ["-c:v", "libx264", "-profile:v", "high", "-bf", "2", "-g", "25", "-keyint_min",
            "25", "-sc_threshold", "0", "-preset", "veryfast"]
#: x265 defaults to open GOP: leading (RASL) pictures follow each CRA.
_X265 = ["-c:v", "libx265", "-x265-params",
         "keyint=24:min-keyint=24:scenecut=0:bframes=4:b-adapt=0:log-level=error",
         "-preset", "ultrafast"]
_AUDIO = {
    "aac": ["-c:a", "aac", "-ar", "16000", "-ac", "1", "-b:a", "32k"],
    "pcm_mulaw": ["-c:a", "pcm_mulaw", "-ar", "8000", "-ac", "1"],
    "pcm_alaw": ["-c:a", "pcm_alaw", "-ar", "8000", "-ac", "1"],
    "adpcm_g726": ["-c:a", "adpcm_g726", "-ar", "8000", "-ac", "1", "-b:a", "32k"],
    "opus": ["-c:a", "libopus", "-ar", "48000", "-ac", "1", "-b:a", "24k"],
}
_MUXERS = {"mp4": "mp4", "mkv": "matroska", "ts": "mpegts"}


@dataclass(frozen=True)
class Case:
    """One kind of footage: video encoder, audio codec, segment container, frame rate."""

    name: str
    video: str  # "h264" | "hevc"
    audio: str  # a key of _AUDIO
    container: str  # "mp4" | "mkv" | "ts"
    vfr: bool = False


CASES = (
    Case("h264-aac-mp4", "h264", "aac", "mp4"),
    Case("h264-aac-ts", "h264", "aac", "ts"),
    Case("h264-pcmu-mkv", "h264", "pcm_mulaw", "mkv"),
    Case("h264-pcma-mkv", "h264", "pcm_alaw", "mkv"),
    Case("h264-g726-mkv", "h264", "adpcm_g726", "mkv"),
    Case("h264-opus-mkv", "h264", "opus", "mkv"),
    Case("hevc-aac-mp4", "hevc", "aac", "mp4"),
    Case("h264-vfr-aac-mkv", "h264", "aac", "mkv", vfr=True),
)


def require_ffmpeg() -> None:
    """Skip the calling test when the ffmpeg CLI is missing."""
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        pytest.skip("needs Debian's ffmpeg CLI (apt-get install ffmpeg, or run .ci/run)")


def _run(args: list[str]) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def make_clip(case: Case, directory: Path, *, seconds: float = CLIP_S,
              audio: bool = True) -> Path:
    """Encode the whole clip (one file) with ffmpeg: moving test picture and a sine tone."""
    directory.mkdir(parents=True, exist_ok=True)
    clip = directory / f"clip.{case.container}"
    video = _X265 if case.video == "hevc" else _X264_BF
    vf = ["-vf", "select='not(between(mod(n\\,10)\\,3\\,4))'", "-fps_mode", "vfr"] \
        if case.vfr else []
    tag = ["-tag:v", "hvc1"] if case.video == "hevc" and case.container == "mp4" else []
    sound = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"] if audio else []
    _run(["ffmpeg", "-v", "error", "-y",
          "-f", "lavfi", "-i", f"testsrc2=size=160x90:rate={FPS}", *sound,
          "-t", str(seconds), *vf, *video, *tag, *(_AUDIO[case.audio] if audio else []),
          "-f", _MUXERS[case.container], str(clip)])
    return clip


def split_segments(case: Case, clip: Path, archive_dir: Path) -> list[Path]:
    """Cut ``clip`` at keyframes every 2 s with ffmpeg's segment muxer; name as the archive does.

    The segments keep the clip's timeline; each is named after the archive time of its
    earliest frame (``T0`` plus that frame's time in the clip, per ffprobe).
    """
    archive_dir.mkdir(parents=True, exist_ok=True)
    work = clip.parent / "split"
    work.mkdir(exist_ok=True)
    _run(["ffmpeg", "-v", "error", "-y", "-i", str(clip), "-map", "0", "-c", "copy",
          "-f", "segment", "-segment_time", str(SEGMENT_S),
          "-segment_format", _MUXERS[case.container], str(work / f"seg%03d.{case.container}")])
    parts = sorted(work.glob(f"seg*.{case.container}"))
    zero = video_start(parts[0])
    paths = []
    for part in parts:
        first = video_start(part)
        target = archive_dir / segment_filename(T0 + first - zero, case.container)
        part.rename(target)
        paths.append(target)
    return paths


def segment_span(path: Path, start_us: int) -> tuple[int, int]:
    """(start, end) archive µs of a segment named ``start_us``: end after its last frame."""
    video = probe_packets(path, "v")
    zero = video_start(path)
    return start_us, start_us + max(p.pts_us + (p.duration_us or FRAME_US) for p in video) - zero


@dataclass(frozen=True)
class Pkt:
    """One packet as ffprobe reports it (µs)."""

    pts_us: int
    dts_us: int | None
    duration_us: int
    keyframe: bool


@dataclass(frozen=True)
class Probe:
    """ffprobe's view of a file: per kind ("v", "a") the first stream's codec, start, packets."""

    codec: dict[str, str]
    start_us: dict[str, int]
    packets: dict[str, list[Pkt]]


@functools.lru_cache(maxsize=256)
def probe(path: Path) -> Probe:
    """One ffprobe run over ``path`` (cached: the corpus files never change)."""
    out = json.loads(_run([
        "ffprobe", "-v", "error", "-show_entries",
        "stream=index,codec_type,codec_name,start_time:"
        "packet=stream_index,pts_time,dts_time,duration_time,flags", "-of", "json", str(path)]))
    index: dict[int, str] = {}
    result = Probe({}, {}, {"v": [], "a": []})
    for stream in out.get("streams", []):
        kind = {"video": "v", "audio": "a"}.get(stream.get("codec_type", ""))
        if kind is None or kind in result.codec:
            continue
        index[stream["index"]] = kind
        result.codec[kind] = stream.get("codec_name", "")
        result.start_us[kind] = round(float(stream.get("start_time", 0)) * S)
    for item in out.get("packets", []):
        kind = index.get(item.get("stream_index", -1))
        if kind is None or "pts_time" not in item:
            continue
        dts = item.get("dts_time")
        result.packets[kind].append(Pkt(
            round(float(item["pts_time"]) * S), None if dts in (None, "N/A") else
            round(float(dts) * S), round(float(item.get("duration_time", 0) or 0) * S),
            "K" in item.get("flags", "")))
    for kind, packets in result.packets.items():
        result.packets[kind] = _fill_durations(packets)
    return result


def _fill_durations(packets: list[Pkt]) -> list[Pkt]:
    """ffprobe 5.1 reports no duration for some first packets (MP4 with an edit list): use
    the distance to the next packet in presentation order (for the last, the one before)."""
    order = sorted(range(len(packets)), key=lambda i: packets[i].pts_us)
    filled = list(packets)
    gap = 0
    for rank, i in enumerate(order):
        if rank + 1 < len(order):
            gap = packets[order[rank + 1]].pts_us - packets[i].pts_us
        if filled[i].duration_us == 0:  # the last one: as long as the one before
            filled[i] = Pkt(packets[i].pts_us, packets[i].dts_us, gap, packets[i].keyframe)
    return filled


def probe_packets(path: Path, kind: str) -> list[Pkt]:
    """Every packet of the first ``kind`` ("v" or "a") stream, in file order, per ffprobe."""
    return probe(path).packets[kind]


def probe_codec(path: Path, kind: str) -> str:
    """Codec name of the first ``kind`` stream ("" when there is none), per ffprobe."""
    return probe(path).codec.get(kind, "")


def video_start(path: Path) -> int:
    """The video stream's start time (µs): its first shown frame, after any edit list."""
    return probe(path).start_us["v"]


@dataclass(frozen=True)
class Truth:
    """What the archive segments hold for a range, in archive µs."""

    start_key_us: int  # the last keyframe at or before the range start
    frames_us: tuple[int, ...]  # every frame shown from the start key up to the end, sorted
    audio_us: int  # audio duration whose pts lies in [start key, end)
    audio_first_us: int
    audio_last_end_us: int


def archive_packets(segments: list[Path], kind: str) -> list[tuple[int, Pkt]]:
    """(archive µs, packet) of every ``kind`` packet of the named segments, per ffprobe.

    A segment's archive time is its name, the time of its video start (its first shown
    frame); its packets are placed relative to that, as a player of the segment shows them.
    """
    from sense_plugin.naming import parse_segment_filename

    result = []
    for path in segments:
        start = parse_segment_filename(path.name)
        assert start is not None
        zero = video_start(path)
        result += [(start + p.pts_us - zero, p) for p in probe_packets(path, kind)]
    return result


def truth(segments: list[Path], start_us: int, end_us: int) -> Truth:
    """The archive's frames and audio for ``[start_us, end_us)`` (archive µs), from ffprobe."""
    video = archive_packets(segments, "v")
    key = max(t for t, p in video if p.keyframe and t <= start_us)
    shown = []
    for t, p in video:  # decoding order: the first frame shown (or decoded) at or after the
        dts = t if p.dts_us is None else t - p.pts_us + p.dts_us  # (dts <= pts)
        if t >= end_us or dts >= end_us:  # end ends the video, with
            break  # the B-run it anchors (docs/evidence.rst)
        shown.append(t)
    frames = sorted({t for t in shown if t >= key})
    audio = sorted({t: p.duration_us for t, p in archive_packets(segments, "a")}.items())
    inside = [(t, d) for t, d in audio if key <= t < end_us]
    return Truth(key, tuple(frames), sum(d for _, d in inside), inside[0][0],
                 inside[-1][0] + inside[-1][1])
