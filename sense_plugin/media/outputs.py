"""The output streams of a cut: created from the first segment read, checked against later ones.

Video is always a stream copy; audio is copied where the container carries the codec, else
transcoded alone to AAC (:mod:`sense_plugin.media.audio`).
"""

from __future__ import annotations

import os

import av

from sense_plugin.errors import ParametersChangedError
from sense_plugin.media import bitstream as bs
from sense_plugin.media.audio import AacTranscoder, can_copy
from sense_plugin.media.cutspec import file_metadata
from sense_plugin.media.subtitles import TimestampTrack


class Outputs:
    """The video and audio streams of one output file."""

    def __init__(self, output: av.container.OutputContainer, fmt: str,
                 audio: bool = True, subtitles: bool = False) -> None:
        self.output, self.fmt, self.audio, self.subtitles = output, fmt, audio, subtitles
        #: The archive-time text track (``<timestamps>subtitle</timestamps>``), once opened.
        self.timestamps: TimestampTrack | None = None
        self.vout: av.VideoStream | None = None
        self.aout: av.AudioStream | None = None
        self.video_stream: av.stream.Stream  # the same streams, typed for packet.stream
        self.audio_stream: av.stream.Stream
        self.transcoder: AacTranscoder | None = None
        self.video_prefixed = True
        self.video_params = ("", 0, 0)

    def open(self, source: av.container.InputContainer) -> av.AudioStream | None:
        """Create the output streams from the first segment read; check later ones match."""
        vin = source.streams.video[0]
        ain = next((a for a in source.streams.audio if a.codec_context is not None), None) \
            if self.audio else None  # <audio>false</audio>: video only
        if self.vout is None:
            self.vout = self.output.add_stream_from_template(vin)
            if vin.codec_context.name == "hevc" and self.fmt == "mp4":
                self.vout.codec_tag = "hvc1"  # Apple players reject the default 'hev1'
            self.aout = self._audio_output(ain) if ain is not None else None
            self.video_stream = self.vout
            if self.aout is not None:
                self.audio_stream = self.aout
            if self.transcoder is None and self.aout is not None and ain is not None \
                    and bs.is_adts(ain):
                # MPEG-TS carries the AAC configuration in ADTS headers; MP4 and MKV need it
                # up front, and the MPEG-TS muxer needs it to frame raw AAC from MP4 sources.
                self.aout.codec_context.extradata = bs.aac_config(ain.codec_context)
            if self.subtitles:
                self.timestamps = TimestampTrack(self.output, self.fmt)
            self.video_prefixed = bs.length_prefixed(vin)
            self.video_params = bs.params(vin)
            return ain
        if bs.params(vin) != self.video_params:  # media/runs.py cuts one file per run
            raise ParametersChangedError(
                f"{os.path.basename(source.name)}: video %s %dx%d differs from %s %dx%d earlier "
                "in the range" % (bs.params(vin) + self.video_params)
            )
        return ain if self.aout is not None else None

    def write_metadata(self, first_us: int, title: str, comment: str) -> None:
        """Set before the first packet: the muxer writes the header with it."""
        self.output.metadata.update(file_metadata(first_us, title, comment))

    def _audio_output(self, ain: av.AudioStream) -> av.AudioStream:
        """A copy of the source's audio stream, or AAC where the container cannot carry it."""
        if can_copy(ain.codec_context.name, self.fmt):
            return self.output.add_stream_from_template(ain)
        self.transcoder = AacTranscoder.for_stream(ain)
        return self.transcoder.add_stream(self.output)
