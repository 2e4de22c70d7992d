"""A live export written while the recording grows (docs/exports.rst: "the file readable while it
grows").

Worker side. The parent (``export/live.py``) sends each newly indexed segment of the device
as it appears (``("segments", [...], ended)`` messages, see :class:`Feed`); the cut copies
it at once into the output, which is the job's temporary file ``<final name>.part`` in the
export directory, written with ``flush_packets`` and flushed after every segment: fragmented
MP4 (a fragment per keyframe), Matroska or MPEG-TS, each readable by a player or PyAV up to
what was written. The range ends when the recording passes its end (a packet at or after it),
when the parent says no more will come (the recording stopped short: a camera that dropped
out at the end), or at a stop (``finish``: the end becomes now; the segments that reach it
still follow). Then the file is finished, hashed and renamed like any cut.

While it waits for the next segment the cut reports progress against elapsed time, so the
parent's stall watchdog sees a live job as alive.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import av

from sense_plugin.media import bitstream as bs
from sense_plugin.media.cutspec import CutCancelled, CutRequest, CutResult, SourceSegment
from sense_plugin.media.cutter import AUDIO_TAIL_US, Cutter, RangeComplete
from sense_plugin.media.sink import HashingSink
from sense_plugin.media.throttle import TokenBucket
from sense_plugin.timestamps import now_us

#: How often the waiting cut looks for new segments and reports progress.
WAIT_S = 0.05
HEARTBEAT_S = 0.5
#: AVIO buffer of a growing file (``flush_packets`` empties it after every packet anyway).
FOLLOW_BUFFER_BYTES = 64 * 1024


@dataclass
class Feed:
    """Segments handed over by the parent, in time order; ``ended``: no more will come."""

    pending: list[SourceSegment] = field(default_factory=list)
    ended: bool = False

    def add(self, segments: Sequence[SourceSegment], ended: bool) -> None:
        self.pending.extend(segments)
        self.ended = self.ended or ended

    def take(self) -> list[SourceSegment]:
        taken, self.pending = self.pending, []
        return taken


def recorded_until_us(segment: SourceSegment) -> int | None:
    """How far a segment still being recorded reaches on disk (blocking): the archive time of
    the newest packet of the stream that lags most, or None before its first complete fragment.

    An export whose end lies in that segment is cut from it once this passes the end
    (docs/evidence.rst, "The end"); the half-written fragment at the end of the file is where
    the demuxer stops, so a read error there only ends the count.
    """
    newest: dict[int, int] = {}
    try:
        with av.open(segment.path) as source:
            if not source.streams.video:
                return None
            video = source.streams.video[0]
            # a stream's fields are read from the open container only: once it is closed,
            # ``video.index`` reads freed memory (any number), and the reach would be None
            video_index = video.index
            streams: list[av.stream.Stream] = [video, *source.streams.audio]
            timings = {s.index: bs.timing(s, video, segment.start_us) for s in streams}
            try:
                for pkt in source.demux(streams):
                    if pkt.pts is not None and pkt.size:
                        mul, den, base = timings[pkt.stream_index]
                        newest[pkt.stream_index] = max(newest.get(pkt.stream_index, base),
                                                       base + pkt.pts * mul // den)
            except av.FFmpegError:
                pass  # the fragment being written
    except (av.FFmpegError, OSError):
        return None
    if video_index not in newest:
        return None
    return min(newest.values())


def cut_while_recording(live: bool, rendered: bool, subtitles: bool, end_us: int) -> bool:
    """Whether a job is cut while its recording grows (else: waited for, then cut whole)."""
    return live and not rendered and not subtitles and end_us > now_us()


class FollowCutter(Cutter):
    """A :class:`Cutter` fed one segment at a time; a stop moves the end to now."""

    def __init__(self, request: CutRequest, output: av.container.OutputContainer,
                 feed: Feed, poll: Callable[[], bool], flush: Callable[[], None],
                 on_progress: Callable[[int, int], None] | None,
                 bytes_written: Callable[[], int],
                 should_finish: Callable[[], bool] | None) -> None:
        super().__init__(request, output, poll, on_progress, 0.2, bytes_written, should_finish)
        self.feed, self.poll, self.flush = feed, poll, flush
        self._last_start = -(1 << 62)

    def run(self) -> None:
        try:
            while True:
                batch = [s for s in self.feed.take() if s.start_us > self._last_start]
                for segment in batch:
                    self._last_start = segment.start_us
                    if segment.end_us > self.t0 and segment.start_us < self.t1 + AUDIO_TAIL_US:
                        self.read(segment)
                    elif segment.start_us >= self.t1 + AUDIO_TAIL_US:
                        raise RangeComplete()
                    self.flush()
                if not batch:
                    self._wait()
        except RangeComplete:
            pass
        self.close_range()

    def _wait(self) -> None:
        """Until a segment arrives; ``RangeComplete`` when none will (or a stop came and the
        recording already passed the new end)."""
        deadline = time.monotonic() + HEARTBEAT_S
        while time.monotonic() < deadline:
            if self.poll():
                raise CutCancelled()
            if self.stopped_us is None and self.should_finish is not None \
                    and self.should_finish():
                self._finish_at(now_us())
            if self.feed.pending:
                return
            if self.feed.ended or (self.prev_end_us or 0) >= self.t1:
                raise RangeComplete()
            time.sleep(WAIT_S)
        timeline = self.timeline
        if timeline.on_progress is not None:  # against elapsed time: alive while it waits
            timeline.on_progress(max(timeline.covered_us, now_us() - self.t0),
                                 timeline.bytes_written())

    def _finish_at(self, dts_a: int) -> None:
        """A stop ends the range at the moment it came, not at the packet being read (the
        cut is behind by the segment being recorded); later segments still reach it."""
        del dts_a
        self.stopped_us = self.t1 = min(self.t1, max(now_us(), self.t0 + 1))


def follow_cut(request: CutRequest, feed: Feed, poll: Callable[[], bool], *,
               throttle: TokenBucket | None = None,
               on_progress: Callable[[int, int], None] | None = None,
               should_finish: Callable[[], bool] | None = None) -> CutResult:
    """Cut ``request`` from the segments ``feed`` receives (``poll`` reads the parent's
    messages and is true once cancelled); like :func:`remux.cut`, else."""
    from sense_plugin.media.remux import OUTPUT_FORMATS, write_then_rename

    muxer, options = OUTPUT_FORMATS[request.fmt]
    fragmented = request.fmt == "mp4"

    def write(tmp: str) -> tuple[Cutter, HashingSink]:
        with HashingSink(tmp, throttle=throttle, should_stop=poll,
                         hash_while_writing=request.fmt != "mkv",
                         mp4_header_room=fragmented) as sink:
            with av.open(sink, "w", format=muxer, options={**options, "flush_packets": "1"},
                         buffer_size=FOLLOW_BUFFER_BYTES) as output:
                cutter = FollowCutter(request, output, feed, poll, sink.flush, on_progress,
                                      lambda: sink.bytes_written, should_finish)
                cutter.run()
            if fragmented:
                sink.finish_mp4_header()
            sink.close()
        return cutter, sink

    return write_then_rename(request.out_path, write)
