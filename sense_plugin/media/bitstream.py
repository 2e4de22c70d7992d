"""Input stream facts, timing and bitstream conversions (Annex B, ADTS, AAC config) for copying."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import TypeAlias

import av

from sense_plugin.errors import MediaError

US = 1_000_000
US_TB = Fraction(1, US)
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000,
              7350)
Packet: TypeAlias = "av.Packet[av.stream.Stream]"
PacketFix: TypeAlias = Callable[[Packet], Packet]

# -- stream facts and timing ------------------------------------------------------------------


def timing(stream: av.stream.Stream, video: av.VideoStream, start_us: int) -> tuple[int, int, int]:
    """``(mul, den, base)`` with archive µs = ``base + ts * mul // den`` for ``stream``.

    A segment's archive start is the first pts of its video stream, for all its streams.
    """
    tb, vtb = stream.time_base or US_TB, video.time_base or US_TB
    ref_us = (video.start_time or 0) * vtb.numerator * US // vtb.denominator
    return tb.numerator * US, tb.denominator, start_us - ref_us


def params(video: av.VideoStream) -> tuple[str, int, int]:
    """Codec name, width and height: what must match across the segments of one cut."""
    return video.codec_context.name, video.codec_context.width, video.codec_context.height


def frame_us(video: av.VideoStream) -> int:
    """The nominal frame duration in µs, 40 ms when the stream has no rate."""
    rate = video.average_rate or video.guessed_rate or video.base_rate
    return int(US / rate) if rate else 40_000


def length_prefixed(video: av.VideoStream) -> bool:
    """True for MP4/Matroska style (avcC/hvcC) packets, False for Annex B (MPEG-TS)."""
    extradata = video.codec_context.extradata
    return bool(extradata) and extradata is not None and extradata[0] == 1


def is_adts(audio: av.AudioStream) -> bool:
    """True for AAC without extradata, i.e. with ADTS headers (MPEG-TS)."""
    return audio.codec_context.name == "aac" and not audio.codec_context.extradata


def aac_config(codec: av.AudioCodecContext) -> bytes:
    """A two-byte AudioSpecificConfig (ISO 14496-3 1.6.2.1) for an ADTS stream's parameters."""
    kind = {"Main": 1, "LC": 2, "SSR": 3, "LTP": 4}.get(codec.profile or "LC", 2)
    index = _AAC_RATES.index(codec.sample_rate) if codec.sample_rate in _AAC_RATES else 15
    return (kind << 11 | index << 7 | codec.channels << 3).to_bytes(2, "big")


# -- packet conversions -----------------------------------------------------------------------


def converters(
    vin: av.VideoStream, ain: av.AudioStream | None, video_prefixed: bool, fmt: str
) -> tuple[PacketFix | None, PacketFix | None]:
    """Bitstream fixes for segments whose container differs from the first one's."""
    fix_video: PacketFix | None = None
    if length_prefixed(vin) != video_prefixed:
        if video_prefixed:
            fix_video = annexb_to_length_prefixed
        else:
            bsf = av.BitStreamFilterContext(f"{vin.codec_context.name}_mp4toannexb", vin)
            fix_video = lambda pkt: filter_one(bsf, pkt)  # noqa: E731
    fix_audio = None
    if ain is not None and is_adts(ain) and fmt != "ts":
        fix_audio = strip_adts  # raw AAC in MP4/MKV: drop the ADTS headers
    return fix_video, fix_audio


def annexb_to_length_prefixed(pkt: Packet) -> Packet:
    """The packet with its start-code separated NAL units rewritten with 4-byte lengths."""
    data = bytes(pkt)
    units: list[bytes] = []
    start = data.find(b"\0\0\1")
    while start >= 0:
        start += 3
        end = data.find(b"\0\0\1", start)
        unit = data[start:] if end < 0 else data[start:end].rstrip(b"\0")
        units.append(len(unit).to_bytes(4, "big") + unit)
        start = end
    return replace_data(pkt, b"".join(units))


def strip_adts(pkt: Packet) -> Packet:
    """The packet without its ADTS header; unchanged when it has none."""
    data = bytes(pkt)
    if len(data) < 7 or data[0] != 0xFF or data[1] & 0xF0 != 0xF0:
        return pkt
    return replace_data(pkt, data[7 if data[1] & 1 else 9 :])


def replace_data(pkt: Packet, data: bytes) -> Packet:
    """A new packet holding ``data`` with the timing and keyframe flag of ``pkt``."""
    new = av.Packet(data)
    new.pts, new.dts, new.duration, new.time_base = pkt.pts, pkt.dts, pkt.duration, pkt.time_base
    new.is_keyframe = pkt.is_keyframe
    return new


def filter_one(bsf: av.BitStreamFilterContext, pkt: Packet) -> Packet:
    """Run ``pkt`` through ``bsf``, which must return exactly one packet; keep its timing."""
    time_base, duration = pkt.time_base, pkt.duration
    out = bsf.filter(pkt)  # takes the packet's data
    if len(out) != 1:
        raise MediaError(f"bitstream conversion returned {len(out)} packets")
    out[0].time_base, out[0].duration = time_base, duration
    return out[0]
