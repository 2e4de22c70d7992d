"""Split by size in the cut itself (docs/exports.rst ``<maxfilesize>``): one pass, one write per
byte.

:class:`PartOutput` stands where the cut's output container stands (its
:class:`~sense_plugin.media.timeline.OutputTimeline` muxes into it). It holds back one GOP (a
video keyframe and every packet muxed after it up to the next keyframe, audio included), and
before writing it decides from its size whether it still fits the current part; if not, the
next part is opened (streams copied from the current one's, metadata of its first frame, times
rebased to 0) and the current one closed, finished and hashed like a single file. A single GOP
larger than the limit is written whole into its own part (``oversize``). The size is an
estimate (payload plus container overhead per format, see ``OVERHEAD``); a finished part that
came out over the limit anyway with several GOPs is split once more from its own file
(:func:`split.split_file`), so every part stays in bounds.

Parts are written under temporary names and given their final names (``..._partNNN.ext``)
once the cut is complete; a cut that produced one part only gives it the plain name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import av

from sense_plugin.media.bitstream import Packet
from sense_plugin.media.cutspec import CutRequest, CutResult, PartFile, gaps_from
from sense_plugin.media.cutter import Cutter
from sense_plugin.media.sink import HashingSink
from sense_plugin.media.throttle import TokenBucket
from sense_plugin.outputpaths import part_name, part_temporary
from sense_plugin.safefs import rename_all_exclusive
from sense_plugin.timestamps import creation_time_text

#: Format → (bytes per part, bytes per packet, extra bytes per payload byte), measured on
#: H.264 + AAC cuts with some margin (bench/split.py prints the real figures).
OVERHEAD: dict[str, tuple[int, int, float]] = {
    "mp4": (4096, 24, 0.0),
    "mkv": (4096, 24, 0.0),
    "ts": (4096, 400, 0.03),
}
#: AVIO buffer of a part (the cut's own is larger; parts are often small).
PART_BUFFER_BYTES = 256 * 1024


@dataclass
class _Packet:
    packet: Packet
    video: bool
    archive_pts: int  # archive µs of a video packet's presentation


@dataclass
class _Part:
    tmp: str
    sink: HashingSink
    container: av.container.OutputContainer
    first_us: int  # archive time of its first keyframe
    shift_us: int  # output time of its first packet: subtracted from every packet
    gops: int = 0
    estimate: int = 0
    frames: int = 0
    last_us: int = 0
    #: What was written, once closed (its last frame is the cut's for the last part).
    file: PartFile | None = None


class PartOutput:
    """The muxer a split cut writes into: rotates to a new part file at keyframes."""

    def __init__(self, request: CutRequest, limit: int, muxer: str, options: dict[str, str],
                 throttle: TokenBucket | None, should_stop: Callable[[], bool],
                 fsync: bool, archive_offset: Callable[[], int]) -> None:
        self.request, self.limit, self.muxer, self.options = request, limit, muxer, options
        self._throttle, self._should_stop, self._fsync = throttle, should_stop, fsync
        self._archive_offset = archive_offset  # output µs + this = archive µs (current)
        self.overhead = OVERHEAD[request.fmt]
        self._gop: list[_Packet] = []
        self.done: list[_Part] = []
        self._opened = 0
        self.part = self._open(0, 0)
        self.metadata = self.part.container.metadata

    # -- the container interface the OutputTimeline and Outputs use --------------------------

    def add_stream_from_template(self, template: av.stream.Stream) -> Any:
        return self.part.container.add_stream_from_template(template)

    def add_stream(self, codec: str, **kwargs: Any) -> Any:
        return self.part.container.add_stream(codec, **kwargs)

    def mux_one(self, packet: Packet) -> None:
        stream = packet.stream
        video = stream.type == "video"
        if video and packet.is_keyframe and self._gop:
            self._write_gop()
        pts = packet.pts if packet.pts is not None else 0
        self._gop.append(_Packet(packet, video, pts + self._archive_offset() if video else 0))

    # -- bookkeeping -------------------------------------------------------------------------

    @property
    def bytes_written(self) -> int:
        return sum(p.sink.size_bytes for p in self.done) + self.part.sink.bytes_written

    def finish(self) -> None:
        """Write the held GOP and close the last part (call once the cut has run)."""
        if self._gop:
            self._write_gop()
        self._close(self.part)

    def discard(self) -> None:
        """Delete every part written so far (failure or cancellation)."""
        for part in [*self.done, self.part]:
            with contextlib.suppress(Exception):
                part.container.close()
            with contextlib.suppress(Exception):
                part.sink.__exit__(None, None, None)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(part.tmp)

    def _cost(self, packets: list[_Packet]) -> int:
        _, per_packet, ratio = self.overhead
        payload = sum(p.packet.size for p in packets)
        return int(payload * (1 + ratio)) + per_packet * len(packets)

    def _write_gop(self) -> None:
        gop, self._gop = self._gop, []
        cost = self._cost(gop)
        if self.part.gops and self.part.estimate + cost > self.limit:
            first_key = next((p for p in gop if p.video), gop[0])
            shift = min(p.packet.dts if p.packet.dts is not None else p.packet.pts or 0
                        for p in gop)
            old = self.part
            self.part = self._open(first_key.archive_pts, shift, old)
            self.metadata = self.part.container.metadata
            self._close(old)
        part = self.part
        streams = part.container.streams
        for held in gop:
            pkt = held.packet
            if part.shift_us:
                if pkt.pts is not None:
                    pkt.pts -= part.shift_us
                if pkt.dts is not None:
                    pkt.dts -= part.shift_us
            pkt.stream = streams[pkt.stream.index]
            part.container.mux_one(pkt)
            if held.video:
                part.frames += 1
                part.last_us = max(part.last_us, held.archive_pts)
        part.gops += 1
        part.estimate += cost

    def _open(self, first_us: int, shift_us: int, previous: _Part | None = None) -> _Part:
        self._opened += 1
        tmp = part_temporary(self.request.out_path, self._opened)
        fragmented = self.request.fmt == "mp4"
        sink = HashingSink(tmp, throttle=self._throttle, should_stop=self._should_stop,
                           fsync=self._fsync, hash_while_writing=self.request.fmt != "mkv",
                           mp4_header_room=fragmented)
        try:
            container = av.open(sink, "w", format=self.muxer, options=self.options,
                                buffer_size=PART_BUFFER_BYTES)
        except BaseException:
            sink.__exit__(None, None, None)
            os.unlink(tmp)
            raise
        part = _Part(tmp, sink, container, first_us, shift_us, estimate=self.overhead[0])
        if previous is not None:
            for stream in previous.container.streams:
                copy = container.add_stream_from_template(stream)
                if stream.codec_tag == "hvc1":  # the template reset it (Apple wants hvc1)
                    copy.codec_tag = "hvc1"
            container.metadata.update(previous.container.metadata)
            container.metadata["creation_time"] = creation_time_text(first_us)
        return part

    def _close(self, part: _Part) -> None:
        part.container.close()
        if self.request.fmt == "mp4":
            part.sink.finish_mp4_header()
        part.sink.close()
        dev, ino = part.sink.identity
        part.file = PartFile(part.tmp, part.sink.size_bytes, part.sink.sha256, dev, ino,
                             part.first_us, part.last_us, part.frames, part.gops)
        self.done.append(part)


def cut_parts(request: CutRequest, limit: int, *, device_id: int,
              throttle: TokenBucket | None = None,
              on_progress: Callable[[int, int], None] | None = None,
              should_stop: Callable[[], bool] = lambda: False,
              should_finish: Callable[[], bool] | None = None,
              progress_interval_s: float = 0.2, fsync: bool = True,
              overhead: tuple[int, int, float] | None = None,
              ) -> tuple[CutResult, list[PartFile]]:
    """Cut ``request`` into parts of at most ``limit`` bytes in one pass.

    Returns the cut's result and the parts, named, in order. When everything fitted one file,
    the parts list is empty and that file has the plain name ``out_path`` (the result then
    carries its size and hash). Raises like :func:`remux.cut`; on any failure every part
    written is deleted. ``overhead`` overrides the format's size allowance (tests force the
    re-split path with it).
    """
    from sense_plugin.media.remux import OUTPUT_FORMATS, raise_translated

    muxer, options = OUTPUT_FORMATS[request.fmt]
    holder: list[Cutter] = []

    def offset() -> int:
        return holder[0].timeline.zero_us - holder[0].timeline.offset_us if holder else 0

    output = PartOutput(request, limit, muxer, options, throttle, should_stop, fsync, offset)
    if overhead is not None:
        output.overhead = overhead
    try:
        cutter = Cutter(request, cast(av.container.OutputContainer, output), should_stop,
                        on_progress, progress_interval_s, lambda: output.bytes_written,
                        should_finish)
        holder.append(cutter)
        cutter.run()
        output.finish()
        result = cutter.result(0, "")
        entries = _entries(output.done, result, request, device_id, limit, should_stop)
        return _name(entries, result, request, device_id, limit)
    except BaseException as exc:
        output.discard()
        if isinstance(exc, Exception):
            raise_translated(exc, os.path.basename(request.out_path))
        raise


def _entries(done: list[_Part], result: CutResult, request: CutRequest, device_id: int,
             limit: int, should_stop: Callable[[], bool]) -> list[PartFile]:
    """Every finished part file, in order, under its temporary name; a part over the limit
    with more than one GOP (the estimate fell short) is split again from its own file."""
    from sense_plugin.media.split import split_file

    entries: list[PartFile] = []
    for number, part in enumerate(done):
        assert part.file is not None  # closed
        entry = dataclasses.replace(
            part.file, first_frame_us=result.first_frame_us if number == 0 else part.first_us,
            last_frame_us=result.last_frame_us if number == len(done) - 1 else part.last_us)
        if entry.size_bytes <= limit or entry.gops == 1:
            entries.append(entry)
            continue
        sub = CutResult(entry.first_frame_us, entry.last_frame_us, entry.frame_count, 0, (),
                        entry.size_bytes, "")
        pieces = split_file(entry.path, sub, request.fmt, limit, request.title, device_id,
                            request.title, request.comment, should_stop, keep_temporary=True)
        os.unlink(entry.path)
        entries.extend(pieces)
    return entries


def _name(entries: list[PartFile], result: CutResult, request: CutRequest,
          device_id: int, limit: int) -> tuple[CutResult, list[PartFile]]:
    """Final names (plain for one part, else ``_partNNN``), gaps per part, oversize.

    A name is given only if nothing has it yet: a part of another device of the export that
    starts at the same keyframe has the same name, and then this device fails (-18 naming
    the file) and deletes its own files; the other's file is left as it is.
    """
    if len(entries) == 1:
        only = entries[0]
        rename_all_exclusive([(only.path, request.out_path)])
        return dataclasses.replace(result, size_bytes=only.size_bytes, sha256=only.sha256,
                                   file_dev=only.file_dev, file_ino=only.file_ino), []
    directory = os.path.dirname(request.out_path)
    paths = [os.path.join(directory, part_name(request.title, device_id, entry.first_frame_us,
                                               request.fmt, number))
             for number, entry in enumerate(entries, 1)]
    rename_all_exclusive([(entry.path, path) for entry, path in zip(entries, paths,
                                                                    strict=True)])
    parts: list[PartFile] = []
    for number, (entry, path) in enumerate(zip(entries, paths, strict=True), 1):
        nxt = entries[number].first_frame_us if number < len(entries) else None
        parts.append(dataclasses.replace(
            entry, path=path, oversize=entry.gops == 1 and entry.size_bytes > limit,
            gaps=gaps_from(result.gaps, entry.first_frame_us, nxt)))
    return result, parts
