"""Write segment files by stream copy under a temporary name; recover partials after a crash.

A segment being written is ``.<final name>.rec.part`` in the device directory (hidden, and
never indexed). Closing renames it to its final name, whose time is the archive time of the
segment's earliest video frame (:func:`naming.segment_filename`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
from av.audio.codeccontext import AudioCodecContext
from av.bitstream import BitStreamFilterContext
from av.packet import Packet
from av.stream import Stream

from sense_plugin.errors import MediaError
from sense_plugin.media.audio import AacTranscoder, can_copy, can_decode
from sense_plugin.naming import (
    MUXERS,
    SEGMENT_EXTENSIONS,
    parse_segment_filename,
    segment_filename,
)
from sense_plugin.timestamps import creation_time_text

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".rec.part"
#: Fragmented MP4 stays readable up to its last fragment when the writer dies (plain MP4 does
#: not); without ``flush_packets`` FFmpeg keeps the fragments in its buffers until close.
MP4_OPTIONS = {"movflags": "frag_keyframe+empty_moov+delay_moov+default_base_moof"
                           "+use_metadata_tags",
               "flush_packets": "1"}
MKV_OPTIONS = {"flush_packets": "1"}
_MP4_VIDEO = {"h264", "hevc"}
_MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "opus", "alac"}
#: Where a segment's header (and its creation_time) lies: well within its first bytes.
_HEADER_BYTES = 64 * 1024
_MKV_EPOCH_US = 978_307_200 * 1_000_000  # 2001-01-01T00:00:00Z
_PARTIAL_RE = re.compile(r"\.(?P<final>.+)" + re.escape(PARTIAL_SUFFIX))


def choose_format(video: Stream, audio: Sequence[Stream]) -> str:
    """Fragmented MP4 when the codecs fit in it, else Matroska (which holds nearly anything).

    ``audio`` are the streams copied as they are (transcoded ones are AAC, which fits both).
    ADTS AAC (from MPEG-TS, no extradata) goes to Matroska: fragmented MP4 writes its
    ``moov`` before the first packet could tell the audio configuration.
    """
    if video.codec_context.name not in _MP4_VIDEO:
        return "mkv"
    for stream in audio:
        name = stream.codec_context.name
        if name not in _MP4_AUDIO or (name == "aac" and not _has_extradata(stream)):
            return "mkv"
    return "mp4"


@dataclass
class AudioPlan:
    """What a recording does with each audio stream of its source."""

    copy: list[Stream] = field(default_factory=list)
    transcode: list[Stream] = field(default_factory=list)  # to AAC: no segment format has it
    dropped: list[str] = field(default_factory=list)  # codec names: nothing can be done


def plan_audio(audio: Sequence[Stream]) -> AudioPlan:
    """Copy what MP4 or Matroska carries, transcode to AAC what FFmpeg decodes, drop the rest.

    G.711 (µ-law, A-law) and G.726 are carried by neither muxer of this FFmpeg: transcoded.
    """
    plan = AudioPlan()
    for stream in audio:
        if stream.codec_context is None:  # a codec this FFmpeg does not know at all
            plan.dropped.append("unknown to this FFmpeg")
            continue
        name = stream.codec_context.name
        if can_copy(name, "mp4") or can_copy(name, "mkv"):
            plan.copy.append(stream)
        elif can_decode(name) and isinstance(stream.codec_context, AudioCodecContext) \
                and stream.codec_context.sample_rate:
            plan.transcode.append(stream)
        else:
            plan.dropped.append(name or "unknown")
    return plan


def _has_extradata(stream: Stream) -> bool:
    return bool(stream.codec_context.extradata_size)


def partial_name(final_name: str) -> str:
    """Temporary name of a segment being written."""
    return f".{final_name}{PARTIAL_SUFFIX}"


def final_name_of_partial(name: str) -> str | None:
    """The final name carried by a recorder partial's name, or None if it is not one."""
    match = _PARTIAL_RE.fullmatch(name)
    if match is None or parse_segment_filename(match.group("final")) is None:
        return None
    return match.group("final")


def format_of(name: str) -> str | None:
    """Segment format (mp4, mkv, ts) from a final segment name's extension."""
    for fmt, ext in SEGMENT_EXTENSIONS.items():
        if name.endswith(ext):
            return fmt
    return None


def _open_output(path: Path, fmt: str, start_us: int) -> av.container.OutputContainer:
    options = MP4_OPTIONS if fmt == "mp4" else MKV_OPTIONS
    container = av.open(str(path), "w", format=MUXERS[fmt], options=options)
    container.metadata["creation_time"] = creation_time_text(start_us)
    return container


class SegmentWriter:
    """One segment being written by stream copy from the given input streams."""

    def __init__(self, directory: Path, fmt: str, first_us: int,
                 templates: Sequence[Stream],
                 transcoded: Mapping[int, AacTranscoder] | None = None,
                 video_size: tuple[int, int] | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.fmt = fmt
        self.first_us = first_us  # the start estimated at the open (creation_time)
        self.tmp_path = directory / partial_name(segment_filename(first_us, fmt))
        self._container = _open_output(self.tmp_path, fmt, first_us)
        try:
            self._streams = {t.index: self._container.add_stream_from_template(t)
                             for t in templates}
            if video_size is not None and all(video_size):
                # after a change of picture size the header states the new one, not the
                # connection's first (readers that trust the header see the real size)
                for stream in self._streams.values():
                    if isinstance(stream, av.VideoStream):
                        stream.codec_context.width, stream.codec_context.height = video_size
            for index, transcoder in (transcoded or {}).items():
                self._streams[index] = transcoder.add_stream(self._container)
            # ADTS headers must go: both MP4 and Matroska want raw AAC frames.
            self._filters = {t.index: BitStreamFilterContext("aac_adtstoasc", t)
                             for t in templates
                             if t.codec_context.name == "aac" and not _has_extradata(t)}
        except BaseException:
            self.abort()
            raise
        self.bytes_written = 0

    def write(self, packet: Packet[Any], source_index: int) -> None:
        """Mux a packet whose pts/dts are already rebased to the segment."""
        bsf = self._filters.get(source_index)
        packets = bsf.filter(packet) if bsf is not None else [packet]
        stream = self._streams[source_index]
        for item in packets:
            item.stream = stream
            self.bytes_written += item.size
            self._container.mux(item)

    def carries(self, source_index: int) -> bool:
        """True when the segment has an output stream for that source stream."""
        return source_index in self._streams

    def commit(self, start_us: int) -> Path:
        """Close the file and rename it to its final name for archive start ``start_us``.

        The start known at the open was a first estimate (the source clock settles while the
        first segment is recorded): the ``creation_time`` written then is corrected in place
        to ``start_us``, so the file states the time of its own first frame.
        """
        self._container.close()
        if start_us != self.first_us and not patch_creation_time(
                self.tmp_path, self.fmt, self.first_us, start_us):
            log.info("%s: creation_time left at the first estimate", self.tmp_path.name)
        final = self.directory / segment_filename(start_us, self.fmt)
        os.replace(self.tmp_path, final)
        return final

    def abort(self) -> None:
        """Close and delete the temporary file (best effort)."""
        try:
            self._container.close()
        except (av.FFmpegError, OSError) as exc:
            log.debug("closing aborted segment %s: %s", self.tmp_path.name, exc)
        self.tmp_path.unlink(missing_ok=True)


def patch_creation_time(path: Path, fmt: str, old_us: int, new_us: int) -> bool:
    """Rewrite the ``creation_time`` the muxer wrote for ``old_us`` as ``new_us``, in place.

    Both encodings have a fixed length: fragmented MP4 with ``use_metadata_tags`` holds the
    ISO text once (an ``mdta`` key), Matroska an 8-byte ``DateUTC`` (ns since 2001-01-01).
    False when it is not found exactly once in the header.
    """
    if fmt == "mp4":
        old, new = creation_time_text(old_us).encode(), creation_time_text(new_us).encode()
    elif fmt == "mkv":
        old, new = _mkv_date_utc(old_us), _mkv_date_utc(new_us)
    else:
        return False
    with open(path, "r+b") as handle:
        head = handle.read(_HEADER_BYTES)
        at = head.find(old)
        if at < 0 or head.find(old, at + 1) >= 0:
            return False
        handle.seek(at)
        handle.write(new)
    return True


def _mkv_date_utc(at_us: int) -> bytes:
    """The Matroska ``DateUTC`` element (ID 0x4461, 8 bytes) for archive time ``at_us``."""
    return b"\x44\x61\x88" + ((at_us - _MKV_EPOCH_US) * 1000).to_bytes(8, "big", signed=True)


def recover_partial(part: Path) -> Path | None:
    """Copy the readable packets of a crashed writer's partial into its final name.

    Returns the final path, or None when nothing usable was in it. The partial is deleted in
    both cases; a half-written segment is never left under a final name.
    """
    final_name = final_name_of_partial(part.name)
    fmt = format_of(final_name) if final_name else None
    if final_name is None or fmt is None:
        part.unlink(missing_ok=True)
        return None
    final = part.with_name(final_name)
    try:
        if final.exists():
            return None
        return _copy_readable(part, final, fmt, parse_segment_filename(final_name) or 0)
    except (av.FFmpegError, OSError, MediaError) as exc:
        log.warning("discarding unreadable partial segment %s: %s", part.name, exc)
        return None
    finally:
        part.unlink(missing_ok=True)


def _copy_readable(part: Path, final: Path, fmt: str, start_us: int) -> Path | None:
    tmp = final.with_name(f".{final.name}.recover.part")
    packets = 0
    try:
        with av.open(str(part), format=MUXERS[fmt], timeout=10.0) as source:
            if not source.streams.video:
                raise MediaError("no video stream")
            streams = [source.streams.video[0], *source.streams.audio]
            with _open_output(tmp, fmt, start_us) as target:
                mapping = {s.index: target.add_stream_from_template(s) for s in streams}
                packets = _copy_packets(source, streams, target, mapping)
        if packets == 0:
            log.warning("discarding partial segment %s: no complete video packet", part.name)
            return None
        os.replace(tmp, final)
        log.info("recovered partial segment %s (%d video packets)", final.name, packets)
        return final
    finally:
        tmp.unlink(missing_ok=True)


def _copy_packets(source: av.container.InputContainer, streams: list[Stream],
                  target: av.container.OutputContainer, mapping: dict[int, Stream]) -> int:
    """Copy until the first read error (the torn end of the partial); count video packets."""
    video_packets = 0
    try:
        for packet in source.demux(streams):
            if packet.size == 0 or (packet.dts is None and packet.pts is None):
                continue
            if packet.stream.type == "video":
                video_packets += 1
            packet.stream = mapping[packet.stream.index]
            target.mux(packet)
    except av.FFmpegError as exc:
        log.info("partial segment read stopped at its torn end: %s", exc)
    return video_packets
