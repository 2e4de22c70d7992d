"""The independent oracle: what an exported file really shows, found by Debian's ``ffprobe``
(``-count_frames -show_frames``) and by a full, flushed PyAV decode, compared with every claim
the export status and the manifest make about it (docs/evidence.rst defines the claims).

Nothing here uses the server's own counters or media code: the file is the only truth.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest
from lxml import etree

from sense_plugin.timestamps import parse_timestamp

#: A hole between two shown frames longer than this is a gap (docs/evidence.rst). Written out
#: here, not imported: the oracle must not share the server's constants.
GAP_TOLERANCE_US = 500_000
#: Timestamps in the documents have millisecond resolution.
CLOCK_SLACK_US = 1_000


@dataclass(frozen=True)
class Claim:
    """What a status ``<file>`` or a manifest ``<file>`` element says about one file."""

    name: str
    size_bytes: int
    sha256: str
    first_us: int
    last_us: int
    frame_count: int
    gaps: tuple[tuple[int, int], ...]

    @classmethod
    def of_result(cls, result: Any) -> Claim:
        """From a cut's result (``media.cutspec.CutResult``): what the status is made of."""
        return cls(name="", size_bytes=result.size_bytes, sha256=result.sha256,
                   first_us=result.first_frame_us, last_us=result.last_frame_us,
                   frame_count=result.frame_count,
                   gaps=tuple((g.start_us, g.end_us) for g in result.gaps))

    @classmethod
    def of(cls, file: etree._Element) -> Claim:
        """From ``<file>`` of getExportVideoStatus (starttime/endtime) or of the manifest
        (firstframe/lastframe)."""
        first = file.findtext("firstframe") or file.findtext("starttime")
        last = file.findtext("lastframe") or file.findtext("endtime")
        assert first and last, etree.tostring(file)
        return cls(
            name=file.findtext("name") or "", size_bytes=int(file.findtext("size") or -1),
            sha256=file.findtext("sha256") or "", first_us=parse_timestamp(first),
            last_us=parse_timestamp(last), frame_count=int(file.findtext("framecount") or -1),
            gaps=tuple((parse_timestamp(g.findtext("starttime") or ""),
                        parse_timestamp(g.findtext("endtime") or ""))
                       for g in file.iterfind("gaps/gap")),
        )


@dataclass(frozen=True)
class Shown:
    """The frames a decoder shows, in presentation order, as µs of file time."""

    times_us: tuple[int, ...]
    creation_us: int | None  # the container's creation_time tag
    #: :func:`picture_digest` of each shown frame (decode only), in presentation order.
    digests: tuple[str, ...] = ()

    @property
    def frame_us(self) -> int:
        """The most common spacing of shown frames (the nominal frame duration)."""
        steps = [b - a for a, b in zip(self.times_us, self.times_us[1:], strict=False)]
        return max(set(steps), key=steps.count) if steps else 40_000

    def holes(self, tolerance_us: int = GAP_TOLERANCE_US) -> list[tuple[int, int]]:
        """(end of a frame, next frame) in file µs where more than ``tolerance_us`` is missing."""
        frame = self.frame_us
        return [(a + frame, b) for a, b in zip(self.times_us, self.times_us[1:], strict=False)
                if b - (a + frame) > tolerance_us]


def ffprobe_shown(path: Path) -> Shown:
    """Frames shown per ``ffprobe -count_frames -show_frames`` (Debian's CLI, its own FFmpeg)."""
    exe = shutil.which("ffprobe")
    if exe is None:
        pytest.skip("Debian's ffprobe is missing: apt-get install -y ffmpeg")
    out = subprocess.run(
        [exe, "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_frames",
         "-show_entries", "frame=best_effort_timestamp_time:stream=nb_read_frames:"
                          "format_tags=creation_time", "-of", "json", str(path)],
        check=True, capture_output=True, timeout=120, text=True).stdout
    data = json.loads(out)
    times = tuple(round(float(f["best_effort_timestamp_time"]) * 1_000_000)
                  for f in data.get("frames", []))
    counted = int(data["streams"][0]["nb_read_frames"])
    assert counted == len(times), f"ffprobe: nb_read_frames {counted}, frames {len(times)}"
    tag = data.get("format", {}).get("tags", {}).get("creation_time")
    return Shown(times, _iso_us(tag))


def decoded_shown(path: Path) -> Shown:
    """Frames shown by a full PyAV decode, flushed (the final empty packet drains the frames
    held back for reordering)."""
    shown: list[tuple[int, str]] = []
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        for packet in container.demux(video):
            for frame in packet.decode():  # the last, empty packet flushes the decoder
                assert frame.pts is not None and frame.time_base is not None
                shown.append((round(frame.pts * frame.time_base * 1_000_000),
                              picture_digest(frame)))
        tag = container.metadata.get("creation_time")
    shown.sort()
    return Shown(tuple(t for t, _ in shown), _iso_us(tag), tuple(d for _, d in shown))


def picture_digest(frame: av.VideoFrame) -> str:
    """MD5 of a decoded picture's visible luma (rows cut to the width: the padding of each
    row is whatever the decoder left there)."""
    return hashlib.md5(frame.to_ndarray(format="gray").tobytes()).hexdigest()


def source_frames(segments: list[tuple[Path, int]]) -> dict[str, int]:
    """Luma MD5 → archive µs of every frame the recording shows: the segments decoded in
    order by one decoder (leading pictures of an open GOP decode across the join), each
    segment's first packet (its keyframe) at the given start (its name's time), the rest
    keeping their spacing. The truth an export's frames are matched against."""
    truth: dict[str, int] = {}
    decoder: av.CodecContext | None = None

    def keep(frames: list[av.VideoFrame]) -> None:
        for frame in frames:
            assert frame.pts is not None
            truth.setdefault(picture_digest(frame), frame.pts)

    for path, start_us in segments:
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            if decoder is None:
                decoder = av.CodecContext.create(video.codec_context.name, "r")
                decoder.extradata = video.codec_context.extradata
            key: int | None = None
            for packet in container.demux(video):
                if not packet.size or packet.pts is None or packet.time_base is None:
                    continue
                key = packet.pts if key is None else key
                # a copy without the demuxer's flags: an MP4 edit list marks the leading
                # pictures "discard", and here, decoded after the GOP before, they are shown
                fresh = av.Packet(bytes(packet))
                fresh.pts = start_us + round((packet.pts - key) * packet.time_base * 1_000_000)
                fresh.time_base, fresh.is_keyframe = Fraction(1, 1_000_000), packet.is_keyframe
                keep(decoder.decode(fresh))
    if decoder is not None:
        keep(decoder.decode(None))  # type: ignore[arg-type]
    return truth


def _iso_us(text: str | None) -> int | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


@dataclass(frozen=True)
class Verdict:
    """What the oracle found: the file's frames in archive µs and the claim it checked."""

    claim: Claim
    frames_us: tuple[int, ...]  # archive µs of every shown frame
    frame_us: int

    @property
    def duration_us(self) -> int:
        """From the first shown frame to the end of the last one."""
        return self.frames_us[-1] - self.frames_us[0] + self.frame_us


def check_file(path: Path, file: etree._Element | Claim, *,
               requested: tuple[int, int] | None = None,
               source: dict[str, int] | None = None, creation_time: bool = True) -> Verdict:
    """Assert every claim ``file`` (a status or manifest ``<file>`` element) makes about the
    exported ``path``, by ffprobe and by a decode; ``requested``: no frame shown outside
    ``[start, end)`` after the first keyframe, none at or after the end.

    Archive time of a shown frame = claimed first frame + its file time after the first
    shown frame (the export keeps the recording's timing). ``source`` (:func:`source_frames`):
    every shown frame is a frame of the recording, at the archive time claimed for it.
    """
    claim = file if isinstance(file, Claim) else Claim.of(file)
    assert path.stat().st_size == claim.size_bytes, (path.name, claim.size_bytes)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == claim.sha256, path.name
    probed, decoded = ffprobe_shown(path), decoded_shown(path)
    assert probed.times_us, f"{path.name}: ffprobe shows no frame"
    rel_probe = [t - probed.times_us[0] for t in probed.times_us]
    rel_decode = [t - decoded.times_us[0] for t in decoded.times_us]
    assert len(rel_probe) == len(rel_decode), (len(rel_probe), len(rel_decode))
    assert max(abs(a - b) for a, b in zip(rel_probe, rel_decode, strict=True)) <= CLOCK_SLACK_US
    assert claim.frame_count == len(rel_probe), \
        f"{path.name}: framecount {claim.frame_count}, ffprobe counts {len(rel_probe)}"
    frames_us = tuple(claim.first_us + t for t in rel_probe)
    assert abs(frames_us[-1] - claim.last_us) <= CLOCK_SLACK_US, \
        f"{path.name}: last frame claimed {claim.last_us}, shown {frames_us[-1]}"
    if creation_time and path.suffix != ".ts":  # MPEG-TS has no such tag
        assert probed.creation_us is not None, f"{path.name}: no creation_time"
        # MP4's mvhd holds whole seconds (ffprobe 5.1 reads only that): compare at its precision
        whole = path.suffix == ".mp4" and probed.creation_us % 1_000_000 == 0
        first_us = claim.first_us // 1_000_000 * 1_000_000 if whole else claim.first_us
        assert abs(probed.creation_us - first_us) <= CLOCK_SLACK_US, \
            f"{path.name}: creation_time {probed.creation_us}, first frame {claim.first_us}"
    frame = probed.frame_us
    holes = [(claim.first_us + a - probed.times_us[0], claim.first_us + b - probed.times_us[0])
             for a, b in probed.holes()]
    if requested is not None and requested[1] - (frames_us[-1] + frame) > GAP_TOLERANCE_US:
        holes.append((frames_us[-1] + frame, requested[1]))  # the recording stops short
    assert len(holes) == len(claim.gaps), f"{path.name}: holes {holes}, gaps {claim.gaps}"
    for (hole_start, hole_end), (gap_start, gap_end) in zip(holes, claim.gaps, strict=True):
        assert abs(hole_start - gap_start) <= frame and abs(hole_end - gap_end) <= frame, \
            (holes, claim.gaps)
    if source is not None:
        _match_source(path.name, frames_us, decoded.digests, source)
    if requested is not None:
        assert frames_us[-1] < requested[1], \
            f"{path.name}: a frame shown at {frames_us[-1]}, at or after the end {requested[1]}"
    return Verdict(claim, frames_us, frame)


def _match_source(name: str, frames_us: tuple[int, ...], digests: tuple[str, ...],
                  source: dict[str, int]) -> None:
    """Every shown frame is a picture of the recording, claimed at its recorded time."""
    found = [(at, source.get(d)) for at, d in zip(frames_us, digests, strict=True)]
    wrong = [(at, recorded) for at, recorded in found
             if recorded is None or abs(at - recorded) > CLOCK_SLACK_US]
    assert not wrong, f"{name}: (claimed, recorded) archive µs differ: {wrong[:4]}"


def find_export_file(root: Path, name: str) -> Path:
    """The exported file called ``name`` somewhere under ``root``."""
    found = [p for p in root.rglob(name) if p.is_file()]
    assert len(found) == 1, (name, found)
    return found[0]


def check_export(root: Path, status: etree._Element, *,
                 requested: tuple[int, int] | None = None,
                 source: dict[str, int] | None = None) -> list[Verdict]:
    """:func:`check_file` for every file of a COMPLETED getExportVideoStatus ``<export>``,
    against both its status and the manifest beside it."""
    verdicts = []
    for file in status.iterfind("devices/device/files/file"):
        path = find_export_file(root, file.findtext("name") or "")
        verdicts.append(check_file(path, file, requested=requested, source=source))
        manifest = path.parent / "manifest.xml"
        if manifest.exists():
            listed = [f for f in etree.parse(str(manifest)).iterfind(".//file")
                      if f.findtext("name") == path.name]
            assert len(listed) == 1, path.name
            check_file(path, listed[0], requested=requested)
    return verdicts
