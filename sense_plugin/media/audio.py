"""Audio a container cannot carry (G.711, G.726, ...) transcoded alone to AAC.

The video is never re-encoded. :class:`AacTranscoder` keeps one AAC encoder for a whole output
(an export, or a recording session), so the audio stays continuous across segment joins. Its
input and output times are archive microseconds: the first decoded sample anchors the output
timeline, and a jump of more than :data:`RESYNC_US` (a real hole in the recording) re-anchors it.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TypeAlias

import av
from av.audio.codeccontext import AudioCodecContext

US = 1_000_000
#: Codecs each container carries by stream copy, as measured with ``add_stream`` on FFmpeg 8.1
#: (MPEG-TS "accepts" G.711 but writes it as a private ``bin_data`` stream: not listed).
COPY_AUDIO: dict[str, frozenset[str]] = {
    "mp4": frozenset({"aac", "opus", "mp3", "ac3", "eac3", "alac"}),
    "mkv": frozenset({"aac", "opus", "mp3", "ac3", "eac3", "vorbis", "flac"}),
    "ts": frozenset({"aac", "opus", "mp3", "ac3", "eac3"}),
}
#: A decoded frame this far from where the running sample count puts it starts a new anchor.
RESYNC_US = 100_000
_AAC_RATES = frozenset(
    {96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000})
_US_TB = Fraction(1, US)
Packet: TypeAlias = "av.Packet[av.stream.Stream]"


def can_copy(codec: str, fmt: str) -> bool:
    """True when container ``fmt`` (mp4, mkv, ts) carries audio ``codec`` as it is."""
    return codec in COPY_AUDIO.get(fmt, frozenset())


def can_decode(codec: str) -> bool:
    """True when the bundled FFmpeg has a decoder for ``codec``."""
    try:
        av.Codec(codec, "r")
    except (av.FFmpegError, ValueError):
        return False
    return True


class AacTranscoder:
    """Decode any audio, encode AAC LC at the source's rate (48 kHz if AAC has no such rate)."""

    def __init__(self, sample_rate: int, channels: int) -> None:
        self.rate = sample_rate if sample_rate in _AAC_RATES else 48000
        self.layout = "mono" if channels <= 1 else "stereo"
        encoder = av.CodecContext.create("aac", "w")
        assert isinstance(encoder, AudioCodecContext)
        encoder.sample_rate, encoder.layout, encoder.format = self.rate, self.layout, "fltp"
        encoder.time_base = Fraction(1, self.rate)
        encoder.bit_rate = min(3 * self.rate, 96_000) * (1 if self.layout == "mono" else 2)
        encoder.open()
        self.encoder = encoder
        self.frame_size = encoder.frame_size or 1024
        self.resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=self.rate)
        self.fifo = av.AudioFifo()
        self.anchor_us: int | None = None
        self.written = 0  # samples since the anchor that entered the FIFO
        self.fifo_pos = 0  # sample position of the FIFO's first sample
        self.samples_in = 0

    @classmethod
    def for_stream(cls, stream: av.stream.Stream) -> AacTranscoder:
        """A transcoder for the audio of ``stream``."""
        codec = stream.codec_context
        assert isinstance(codec, AudioCodecContext)
        return cls(codec.sample_rate or 8000, codec.channels or 1)

    def add_stream(self, container: av.container.OutputContainer) -> av.AudioStream:
        """The AAC output stream that :meth:`feed` packets go to."""
        stream = container.add_stream("aac", rate=self.rate, layout=self.layout)
        stream.codec_context.bit_rate = self.encoder.bit_rate
        return stream

    def feed(self, packet: Packet, decoder: AudioCodecContext,
             at_us: int) -> list[tuple[Packet, int]]:
        """Decode ``packet`` (archive time ``at_us``) with ``decoder``; the AAC packets ready.

        Each result is ``(packet, archive µs of its pts)``, the packet timed in µs (pts = dts,
        duration, ``time_base`` 1/1000000); the first one lies one AAC frame
        before the first sample (the encoder's priming), as in any AAC file.
        """
        out: list[tuple[Packet, int]] = []
        for frame in decoder.decode(packet):
            assert isinstance(frame, av.AudioFrame)
            self._frame(frame, at_us)
            at_us += frame.samples * US // (frame.sample_rate or self.rate)
            out += self._encode_ready(final=False)
        return out

    def flush(self) -> list[tuple[Packet, int]]:
        """Encode what is left (a short last frame) and drain the encoder."""
        if self.anchor_us is None:
            return []
        return self._encode_ready(final=True)

    def _frame(self, frame: av.AudioFrame, at_us: int) -> None:
        if self.anchor_us is None:
            self.anchor_us = at_us
        position = (at_us - self.anchor_us) * self.rate // US
        if abs(position - self.written) * US > RESYNC_US * self.rate:
            if self.fifo.samples:
                self.fifo.read()  # the <1 frame left before a hole: dropped
            self.written = self.fifo_pos = position
        frame.pts = None
        for converted in self.resampler.resample(frame):
            converted.pts = None
            self.fifo.write(converted)
            self.written += converted.samples
        self.samples_in += frame.samples

    def _encode_ready(self, *, final: bool) -> list[tuple[Packet, int]]:
        frames: list[av.AudioFrame | None] = []
        while self.fifo.samples >= self.frame_size or (final and self.fifo.samples):
            chunk = self.fifo.read(min(self.frame_size, self.fifo.samples))
            assert chunk is not None
            chunk.pts, chunk.time_base = self.fifo_pos, Fraction(1, self.rate)
            self.fifo_pos += chunk.samples
            frames.append(chunk)
        if final:
            frames.append(None)
        anchor = self.anchor_us or 0
        result = []
        for item in frames:
            for pkt in self.encoder.encode(item):
                if pkt.pts is None:
                    continue
                at_us = anchor + pkt.pts * US // self.rate
                pkt.duration = (pkt.duration or self.frame_size) * US // self.rate
                pkt.pts = pkt.dts = at_us
                pkt.time_base = _US_TB
                result.append((pkt, at_us))
        return result
