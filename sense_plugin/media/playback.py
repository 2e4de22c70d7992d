"""Playback: one camera's range as a fragmented MP4 stream copy, handed over in chunks.

The same cut as an export (:class:`~sense_plugin.media.cutter.Cutter`: from the keyframe at
or before the start, frames selected by presentation time), muxed as fragmented MP4 into a
:class:`ChunkSink` instead of a file. Nothing is written to disk and nothing is hashed. The
caller runs :func:`stream_range` on a thread of its own and reads the chunks as they come
(``docs/page.rst``, "Playback").
"""

from __future__ import annotations

from collections.abc import Callable

import av

from sense_plugin.errors import MediaError, SenseError
from sense_plugin.media.cutspec import CutCancelled, CutRequest, SourceRange, SourceSegment
from sense_plugin.media.cutter import Cutter
from sense_plugin.media.sink import WriteCancelled

#: A browser plays this as it arrives: an empty ``moov`` first, then one fragment per GOP.
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
#: The muxer hands bytes over in pieces of at most this size (small: playback starts early).
CHUNK_BYTES = 64 * 1024


class ChunkSink:
    """A write-only file object for ``av.open``: every write goes to ``deliver``.

    ``deliver(first_frame_us, data)`` receives the archive time of the output's first frame
    (output time 0) with each chunk; it returns False once the reader is gone, which cancels
    the cut.
    """

    def __init__(self, deliver: Callable[[int, bytes], bool]) -> None:
        self.deliver = deliver
        self.bytes_written = 0
        self.cancelled = False
        #: The archive time of output time 0; the cut knows it before the muxer writes its
        #: header, which happens with the first packet.
        self.first_frame_us: Callable[[], int] = lambda: 0

    def write(self, data: bytes) -> int:
        if self.cancelled or not self.deliver(self.first_frame_us(), bytes(data)):
            self.cancelled = True
            raise WriteCancelled()
        self.bytes_written += len(data)
        return len(data)

    def should_stop(self) -> bool:
        return self.cancelled


def stream_range(segments: tuple[SourceSegment, ...], start_us: int, end_us: int,
                 sink: ChunkSink, *, title: str = "") -> int:
    """Mux ``[start_us, end_us)`` of ``segments`` into ``sink``; returns the bytes written.

    Raises :class:`~sense_plugin.errors.NoRecordError` when no video lies in the range,
    :class:`CutCancelled` once the reader is gone, :class:`MediaError` for unreadable sources.
    """
    request = CutRequest(SourceRange(segments, start_us, end_us), out_path="", fmt="mp4",
                         title=title)
    try:
        with av.open(sink, "w", format="mp4", options={"movflags": MOVFLAGS},
                     buffer_size=CHUNK_BYTES) as output:
            cutter = Cutter(request, output, sink.should_stop, None, 1.0,
                            lambda: sink.bytes_written)
            sink.first_frame_us = lambda: _time_zero_us(cutter)
            cutter.run()
    except (CutCancelled, WriteCancelled):
        raise CutCancelled("playback cancelled") from None
    except av.FFmpegError as exc:
        if sink.cancelled:
            raise CutCancelled("playback cancelled") from None
        raise MediaError(f"cannot play the range: {exc}") from exc
    except SenseError:
        raise
    return sink.bytes_written


def _time_zero_us(cutter: Cutter) -> int:
    """The archive time of the stream's time 0: the first keyframe's, or its decoding time
    when that comes earlier (B-frames: the muxer moves the start back to the first dts)."""
    timeline = cutter.timeline
    first_dts = timeline.first_dts_us
    return timeline.first_us if first_dts is None else min(first_dts, timeline.first_us)
