"""The end of a cut told in advance: the durations its fragmented MP4 header will state.

A fragmented MP4 export gets its durations written into ``moov`` once it is complete
(``media/mp4header.py``), and SHA-256 sees the file's bytes in order, so a header known only at
the end means the whole file is read back and hashed after the muxer is done. The last frames
of a cut are known before then: they are in the last segment the range reaches, and the cut
keeps, in decoding order, the frames shown from its first keyframe up to the first frame shown
or decoded at or after the end. :func:`predict_header` reads that segment's packet timing (no
payload is decoded) and states the header the finished file will have; the sink hashes it in
place of the one written and compares it with the real one at the end (docs/performance.rst,
"Hashing a fragmented MP4 while it is written"). A wrong guess costs only the read-back.
"""

from __future__ import annotations

import logging
import struct

import av

from sense_plugin.errors import SenseError
from sense_plugin.media import bitstream as bs
from sense_plugin.media.cutspec import SEEK_MARGIN_US
from sense_plugin.media.cutter import Cutter
from sense_plugin.media.mp4header import stated_header, track_timescales
from sense_plugin.media.sourceopen import open_source

log = logging.getLogger(__name__)
#: (dts, pts, duration) of a video packet, in output µs.
Timing = tuple[int, int, int]


def predict_header(cutter: Cutter, output: av.container.OutputContainer,
                   header: bytes) -> bytes | None:
    """The header ``header`` (as the muxer wrote it, room included) will be once the cut
    ``cutter`` writes into ``output`` is complete, or None when that cannot be told now.

    Told only for a video-only cut whose output has started: audio and text tracks and
    sources without decoding times are left to the read-back. A stop asked for later
    (``should_finish``) ends the file elsewhere: the header then differs from the one told and
    the sink reads the file back.
    """
    timeline = cutter.timeline
    if (cutter.stopped_us is not None or not cutter.started or len(output.streams) != 1
            or cutter.outputs.vout is None or timeline.first_dts_us is None):
        return None
    try:
        return _told(cutter, cutter.outputs.vout, header)
    except (av.FFmpegError, OSError, SenseError, struct.error, IndexError) as exc:
        # a guess that cannot be made is no error: the sink reads the file back instead, and
        # a source that cannot be read fails the cut itself when it gets there
        log.debug("no header prediction: %s", exc)
        return None


def _told(cutter: Cutter, stream: av.VideoStream, header: bytes) -> bytes | None:
    tail = _tail(cutter)
    scales = track_timescales(header)
    time_base = stream.time_base
    if not tail or time_base is None or scales != {1: time_base.denominator} \
            or time_base.numerator != 1:
        return None
    timeline = cutter.timeline
    assert timeline.first_dts_us is not None
    first_dts = _ticks(timeline.first_dts_us - timeline.zero_us, time_base.denominator)
    return stated_header(header, {1: _ends(tail, first_dts, time_base.denominator)})


def _tail(cutter: Cutter) -> list[Timing]:
    """The video packets the cut will write from the last segment the range reaches."""
    t1 = cutter.t1
    reached = [s for s in cutter.request.segments if s.start_us < t1 and s.end_us > cutter.t0]
    if not reached:
        return []
    segment = max(reached, key=lambda s: s.start_us)
    first_us, zero_us = cutter.timeline.first_us, cutter.timeline.zero_us
    tail: list[Timing] = []
    with open_source(segment.path, header_only=True) as source:
        if not source.streams.video:
            return []
        vin = source.streams.video[0]
        mul, den, base = bs.timing(vin, vin, segment.start_us)
        if t1 - segment.start_us > SEEK_MARGIN_US:  # a long segment: read only its end
            target = (t1 - SEEK_MARGIN_US - base) * den // mul
            source.seek(target, stream=vin, backward=True)
        for pkt in source.demux(vin):
            if not pkt.size:
                continue
            if pkt.dts is None or pkt.pts is None:
                return []  # filled in by the cut as it goes: not told in advance
            pts_a, dts_a = base + pkt.pts * mul // den, base + pkt.dts * mul // den
            if dts_a >= t1 or pts_a >= t1:
                break  # the first frame after the end: the video ends here
            if pts_a >= first_us:
                dts = dts_a - zero_us
                tail.append((dts, max(dts, pts_a - zero_us), (pkt.duration or 0) * mul // den))
    return tail


def _ends(tail: list[Timing], first_dts: int, scale: int) -> tuple[int, int]:
    """(media time past the last sample, past the last sample shown) in ``1/scale`` units.

    FFmpeg's MP4 muxer counts media time from the first packet's dts; a sample lasts until the
    next sample's dts, the last one its packet's duration.
    """
    ticks = [(_ticks(d, scale), _ticks(p, scale), _ticks(u, scale)) for d, p, u in tail]
    shown_end = 0
    for index, (dts, pts, duration) in enumerate(ticks):
        if index + 1 < len(ticks):
            duration = ticks[index + 1][0] - dts
        shown_end = max(shown_end, pts + duration - first_dts)
    last_dts, _, last_duration = ticks[-1]
    return last_dts + last_duration - first_dts, shown_end


def _ticks(us: int, scale: int) -> int:
    """``us`` in ``1/scale`` units, rounded to the nearest, halves away from zero (FFmpeg's
    ``av_rescale_q``, as a packet is rescaled to its stream's time base when muxed)."""
    scaled = abs(us) * scale
    value = (scaled + bs.US // 2) // bs.US
    return value if us >= 0 else -value
