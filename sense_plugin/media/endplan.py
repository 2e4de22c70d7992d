"""The end of a cut told in advance: the durations its fragmented MP4 header will state.

A fragmented MP4 export gets its durations written into ``moov`` once it is complete
(``media/mp4header.py``), and SHA-256 sees the file's bytes in order, so a header known only at
the end means the whole file is read back and hashed after the muxer is done. The last frames
of a cut are known before then: they are in the last segment the range reaches, and the cut
keeps, in decoding order, the frames shown from its first keyframe up to the first frame shown
or decoded at or after the end (and copied audio shown before the end). :func:`predict_header`
reads the packet timing of that segment (and of the next ones for audio muxed ahead of its
video; no payload is decoded) and states the header the finished file will have; the sink
hashes it in place of the one written and compares it with the real one at the end
(docs/performance.rst, "Hashing a fragmented MP4 while it is written"). A wrong guess costs
only the read-back.
"""

from __future__ import annotations

import logging
import struct

import av

from sense_plugin.errors import SenseError
from sense_plugin.media import bitstream as bs
from sense_plugin.media.cutspec import SEEK_MARGIN_US, SourceSegment
from sense_plugin.media.cutter import AUDIO_TAIL_US, Cutter
from sense_plugin.media.mp4header import stated_header, track_timescales
from sense_plugin.media.sourceopen import open_source

log = logging.getLogger(__name__)
#: (dts, pts, duration) of a packet, in output µs.
Timing = tuple[int, int, int]


class _Untold(Exception):
    """The end cannot be told from the sources' timing alone."""


def predict_header(cutter: Cutter, output: av.container.OutputContainer,
                   header: bytes) -> bytes | None:
    """The header ``header`` (as the muxer wrote it, room included) will be once the cut
    ``cutter`` writes into ``output`` is complete, or None when that cannot be told now.

    Told for a cut whose output has started, with its video and audio copied: audio that is
    transcoded, a text track and sources without decoding times are left to the read-back. A
    stop asked for later (``should_finish``) ends the file elsewhere: the header then differs
    from the one told and the sink reads the file back.
    """
    outputs, timeline = cutter.outputs, cutter.timeline
    tracks = 1 + (outputs.aout is not None)
    if (cutter.stopped_us is not None or not cutter.started or len(output.streams) != tracks
            or outputs.vout is None or outputs.transcoder is not None
            or timeline.first_dts_us is None):
        return None
    try:
        return _told(cutter, header)
    except (_Untold, av.FFmpegError, OSError, SenseError, struct.error, IndexError) as exc:
        # a guess that cannot be made is no error: the sink reads the file back instead, and
        # a source that cannot be read fails the cut itself when it gets there
        log.debug("no header prediction: %s", exc)
        return None


def _told(cutter: Cutter, header: bytes) -> bytes | None:
    outputs, timeline = cutter.outputs, cutter.timeline
    assert outputs.vout is not None and timeline.first_dts_us is not None
    video, audio = _tails(cutter)
    wanted: list[tuple[av.stream.Stream, list[Timing], int]] = [
        (outputs.vout, video, timeline.first_dts_us - timeline.zero_us)]
    if outputs.aout is not None:
        if timeline.first_audio_us is None:
            return None
        wanted.append((outputs.aout, audio, timeline.first_audio_us))
    scales = track_timescales(header)
    ends: dict[int, tuple[int, int]] = {}
    for track_id, (stream, tail, first_us) in enumerate(wanted, start=1):
        time_base = stream.time_base
        if not tail or time_base is None or time_base.numerator != 1 \
                or scales.get(track_id) != time_base.denominator:
            return None
        scale = time_base.denominator
        ends[track_id] = _ends(tail, _ticks(first_us, scale), scale)
    return stated_header(header, ends)


def _tails(cutter: Cutter) -> tuple[list[Timing], list[Timing]]:
    """The video and the audio packets the cut will write last, in output µs.

    The video's from the last segment the range reaches; the audio's from there too and, when
    that segment's audio ends before the end of the range, from the segments just after it
    (the cut reads those for audio muxed ahead of their video).
    """
    t0, t1 = cutter.t0, cutter.t1
    segments = sorted((s for s in cutter.request.source.segments
                       if s.end_us > t0 and s.start_us < t1 + AUDIO_TAIL_US),
                      key=lambda s: s.start_us)
    reached = [s for s in segments if s.start_us < t1]
    if not reached:
        return [], []
    last = reached[-1]
    video, audio, audio_done = _segment_tail(cutter, last, video=True)
    for segment in segments[len(reached):]:
        if audio_done or cutter.outputs.aout is None:
            break
        _, more, audio_done = _segment_tail(cutter, segment, video=False)
        audio += more
    return video, audio


def _segment_tail(cutter: Cutter, segment: SourceSegment, *, video: bool
                  ) -> tuple[list[Timing], list[Timing], bool]:
    """What the cut writes of one segment near the end: (video, audio, audio ended here)."""
    with open_source(segment.path, header_only=True) as source:
        if not source.streams.video:
            return [], [], False
        vin = source.streams.video[0]
        ain = next((a for a in source.streams.audio if a.codec_context is not None), None)
        if cutter.outputs.aout is None:
            ain = None
        tail = _Tail(cutter, segment, vin, ain, video)
        if cutter.t1 - segment.start_us > SEEK_MARGIN_US:  # a long segment: read its end
            target = (cutter.t1 - SEEK_MARGIN_US - tail.v_base) * tail.v_den // tail.v_mul
            source.seek(target, stream=vin, backward=True)
        for pkt in source.demux([vin, ain] if ain is not None else [vin]):
            if pkt.size and pkt.pts is not None and tail.take(pkt):
                break
        return tail.video, tail.audio, tail.audio_done


class _Tail:
    """The cut's selection at the end of the range, applied to one segment's packet timing."""

    def __init__(self, cutter: Cutter, segment: SourceSegment, vin: av.VideoStream,
                 ain: av.AudioStream | None, video: bool) -> None:
        self.t1, self.first_us = cutter.t1, cutter.timeline.first_us
        self.zero_us = cutter.timeline.zero_us
        self.v_mul, self.v_den, self.v_base = bs.timing(vin, vin, segment.start_us)
        self.a_mul, self.a_den, self.a_base = \
            bs.timing(ain, vin, segment.start_us) if ain is not None else (1, 1, 0)
        self.audio_index = ain.index if ain is not None else -1
        self.video: list[Timing] = []
        self.audio: list[Timing] = []
        self.video_done = not video
        self.audio_done = False

    def take(self, pkt: bs.Packet) -> bool:
        """Count one packet; True once nothing after it can be written."""
        assert pkt.pts is not None
        if pkt.stream_index == self.audio_index:
            if not self.audio_done:
                self._take_audio(pkt.pts, pkt.duration or 0)
        elif not self.video_done:
            self._take_video(pkt)
        return self.video_done and (self.audio_done or self.audio_index < 0)

    def _take_audio(self, pts: int, duration: int) -> None:
        at = self.a_base + pts * self.a_mul // self.a_den
        if at >= self.t1:
            self.audio_done = True  # audio is written up to the end
        elif at >= self.first_us:
            self.audio.append((at - self.zero_us, at - self.zero_us,
                               duration * self.a_mul // self.a_den))

    def _take_video(self, pkt: bs.Packet) -> None:
        if pkt.dts is None or pkt.pts is None:
            raise _Untold()  # filled in by the cut as it goes: not told in advance
        pts_a = self.v_base + pkt.pts * self.v_mul // self.v_den
        dts_a = self.v_base + pkt.dts * self.v_mul // self.v_den
        if dts_a >= self.t1 or pts_a >= self.t1:
            self.video_done = True  # the first frame after the end: the video ends here
        elif pts_a >= self.first_us:
            dts = dts_a - self.zero_us
            self.video.append((dts, max(dts, pts_a - self.zero_us),
                               (pkt.duration or 0) * self.v_mul // self.v_den))


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
