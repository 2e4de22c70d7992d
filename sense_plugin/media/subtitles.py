"""Wall-clock timestamps as a timed-text track, so a stream copy shows archive time.

One cue per second of archive time: the cue of second S starts at the first frame shown in
S and lasts until the next cue, the end of the file, or S + 1 s, whichever comes first (a cue
is written when the next one starts, so its end is known). MP4 carries it as ``mov_text``
(tx3g), Matroska as SubRip; MPEG-TS has no such track (the API refuses it with -22). The
packets are built here (FFmpeg's text encoders only wrap plain text): nothing is re-encoded.
"""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction
from zoneinfo import ZoneInfo

import av
from av.subtitles.stream import SubtitleStream

US = 1_000_000
#: Output format → subtitle codec.
CODECS = {"mp4": "mov_text", "mkv": "srt"}
CUE_TB = Fraction(1, 1000)
CUE_FORMAT = "%Y-%m-%d %H:%M:%S"
#: The encoders want an ASS header even though the cues are plain text.
_ASS_HEADER = (
    b"[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\n"
    b"Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, "
    b"BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, "
    b"BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n"
    b"Style: Default,Sans,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0"
    b"\n\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, "
    b"Text\n"
)


def supported(fmt: str) -> bool:
    return fmt in CODECS


class TimestampTrack:
    """Adds the track to ``output`` and writes one cue per archive second as frames pass."""

    def __init__(self, output: av.container.OutputContainer, fmt: str,
                 timezone: str = "UTC", text_format: str = CUE_FORMAT) -> None:
        if fmt not in CODECS:
            raise ValueError(f"no timed-text track in {fmt!r} outputs")
        self.output, self.fmt = output, fmt
        stream = output.add_stream(CODECS[fmt])
        assert isinstance(stream, SubtitleStream)
        stream.codec_context.subtitle_header = _ASS_HEADER
        stream.time_base = CUE_TB
        stream.metadata["title"] = "archive time"
        self.stream = stream
        self.zone = ZoneInfo(timezone)
        self.text_format = text_format
        self.second: int | None = None  # archive second of the pending cue
        self.pending: tuple[bytes, int, int] | None = None  # text, start ms, longest ms
        self.cues = 0

    def frame(self, archive_us: int, out_us: int) -> None:
        """A video frame at ``archive_us`` is shown at ``out_us`` in the file."""
        second = archive_us // US
        if self.second is not None and second <= self.second:
            return  # the same second, or a reordered (B-) frame of an earlier one
        self.second = second
        self._flush(out_us)
        longest_ms = max(1, ((second + 1) * US - archive_us) // 1000)
        self.pending = (self._text(second), out_us // 1000, longest_ms)

    def close(self, end_out_us: int) -> None:
        """The file ends at ``end_out_us`` (after its last frame): write the last cue."""
        self._flush(end_out_us)

    def _flush(self, next_out_us: int) -> None:
        """Write the pending cue, lasting until the next one (at most to its second's end)."""
        if self.pending is None:
            return
        text, start_ms, longest_ms = self.pending
        self.pending = None
        self._write(text, start_ms, max(1, min(longest_ms, next_out_us // 1000 - start_ms)))

    def _text(self, second: int) -> bytes:
        return datetime.fromtimestamp(second, self.zone).strftime(self.text_format).encode()

    def _write(self, text: bytes, start_ms: int, duration_ms: int) -> None:
        data = len(text).to_bytes(2, "big") + text if self.fmt == "mp4" else text
        packet = av.Packet(data)
        packet.stream = self.stream
        packet.time_base = CUE_TB
        packet.pts = packet.dts = start_ms
        packet.duration = duration_ms
        self.output.mux(packet)
        self.cues += 1
