"""Notice a camera changing its picture size mid-stream (new parameter sets at a keyframe).

A reconfigured camera keeps its connection and sends new SPS (H.264) or VPS/SPS (H.265) with
the next keyframe. Segments must not mix sizes (a segment file has one header), so the
recorder starts a new segment there. The parameter sets are compared as bytes at every
keyframe (cheap); only when they differ is the keyframe decoded to learn the new size.
See docs/cameras.rst, *Resolution changes*.
"""

from __future__ import annotations

import logging

import av
from av.packet import Packet
from av.stream import Stream

log = logging.getLogger("sense_plugin.archive.recorder")

_H264_SPS = {7}
_HEVC_SETS = {32, 33}


def parameter_sets(data: bytes, codec: str) -> bytes:
    """The SPS (and HEVC VPS) NAL units inside an Annex B or length-prefixed access unit."""
    if codec not in ("h264", "hevc"):
        return b""
    wanted = _H264_SPS if codec == "h264" else _HEVC_SETS
    found = []
    for unit in _nal_units(data):
        if not unit:
            continue
        kind = unit[0] & 0x1F if codec == "h264" else (unit[0] >> 1) & 0x3F
        if kind in wanted:
            found.append(unit)
    return b"".join(found)


def _nal_units(data: bytes) -> list[bytes]:
    if data.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")):  # Annex B
        return [chunk.rstrip(b"\x00") for chunk in data.split(b"\x00\x00\x01")]
    units, offset = [], 0
    while offset + 4 <= len(data):  # length-prefixed (MP4 style), 4-byte lengths
        size = int.from_bytes(data[offset:offset + 4], "big")
        if size <= 0 or offset + 4 + size > len(data):
            break
        units.append(data[offset + 4:offset + 4 + size])
        offset += 4 + size
    return units


class SizeWatch:
    """The picture size of a session's video, updated at keyframes with new parameter sets."""

    def __init__(self, video: Stream) -> None:
        codec = video.codec_context
        self.codec = codec.name if codec is not None else ""
        self.size = (getattr(codec, "width", 0), getattr(codec, "height", 0))
        self._sets: bytes | None = None

    def changed(self, packet: Packet[Stream]) -> tuple[int, int] | None:
        """At a keyframe: the new size when it differs from the current one, else None."""
        sets = parameter_sets(bytes(packet), self.codec)
        if not sets or sets == self._sets:
            return None
        self._sets = sets
        size = self._decode_size(packet)
        if size is None or size == self.size:
            return None
        old, self.size = self.size, size
        return size if old != (0, 0) else None

    def _decode_size(self, packet: Packet[Stream]) -> tuple[int, int] | None:
        """Decode the keyframe alone (its parameter sets are in band) for its size."""
        try:
            decoder = av.CodecContext.create(self.codec, "r")
            assert isinstance(decoder, av.VideoCodecContext)
            copy = av.Packet(bytes(packet))
            for frame in decoder.decode(copy):
                if isinstance(frame, av.VideoFrame):
                    return frame.width, frame.height
            for frame in decoder.decode(None):
                if isinstance(frame, av.VideoFrame):
                    return frame.width, frame.height
        except av.FFmpegError as exc:
            log.debug("keyframe with new parameter sets did not decode: %s", exc)
        return None
