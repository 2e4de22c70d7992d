"""Split a finished cut into parts of at most ``maxfilesize`` bytes, at keyframes
(docs/exports.rst).

Worker side, stream copy. Pass 1 indexes the packets of the whole file into GOPs (a video
keyframe and everything demuxed after it up to the next one, audio included); the GOPs are
planned greedily into parts from their packet sizes and an overhead allowance; pass 2 writes
the parts (times rebased to start at 0, metadata of the part's first frame) through the same
hashing sink as the cut. A part that came out over the limit with more than one GOP makes
the plan shrink (more overhead allowed) and the parts be written again; a single GOP larger
than the limit is kept whole in its own part, which is marked ``oversize``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import av

from sense_plugin.media.cutspec import (
    CutCancelled,
    CutResult,
    PartFile,
    file_metadata,
    gaps_from,
)
from sense_plugin.media.sink import HashingSink
from sense_plugin.outputpaths import part_name, part_temporary
from sense_plugin.safefs import rename_all_exclusive

US = 1_000_000
#: Container bytes allowed per packet and per part before the first retry.
PACKET_OVERHEAD = 24
PART_OVERHEAD = 64 * 1024
MAX_PLANS = 6


@dataclass
class _Gop:
    first_packet: int  # index in demux order
    packets: int = 0
    payload: int = 0
    start_us: int = 0  # file time of its keyframe
    last_us: int = 0  # file time of its last video frame
    frames: int = 0


@dataclass
class _Plan:
    parts: list[list[_Gop]] = field(default_factory=list)


def split_file(path: str, result: CutResult, fmt: str, limit: int, device_name: str,
               device_id: int, title: str, comment: str,
               should_stop: Callable[[], bool], *,
               keep_temporary: bool = False) -> list[PartFile]:
    """Write the parts of ``path`` beside it (``..._partNNN.ext``); the parts, in order.

    Every part is written under a temporary name (``<path>.pNNN.part``: a worker killed
    meanwhile leaves only names the export's clean-up knows) and all are given their final
    names at the end, never over an existing file: a part name that exists already (another
    device's part starting at the same keyframe) fails the split with -18 and deletes its
    parts. With ``keep_temporary`` they keep the temporary names (their ``path``) for the
    caller to rename. ``path`` itself is left for the caller to delete.
    """
    gops, first_us = _index(path)
    archive = result.first_frame_us - first_us  # archive µs = file µs + this
    overhead = (PART_OVERHEAD, PACKET_OVERHEAD)
    for _ in range(MAX_PLANS):
        plan = _plan(gops, limit, *overhead)
        written: list[PartFile] = []
        try:  # a failure (cancel, full disk) deletes the parts written so far
            for number, part in enumerate(plan, 1):
                tmp = part_temporary(path, number)
                written.append(_write_part(path, tmp, part, fmt, part[0].start_us + archive,
                                           title, comment, should_stop))
                if written[-1].size_bytes > limit and len(part) > 1:
                    raise _TooLarge()
        except _TooLarge:
            _remove(written)
            overhead = (overhead[0] * 2, overhead[1] * 2)
            continue
        except BaseException:
            _remove(written)
            raise
        parts = _finish(written, plan, archive, result, limit)
        if keep_temporary:
            return parts
        final = [dataclasses.replace(part, path=_part_path(path, number, part, device_name,
                                                           device_id, fmt))
                 for number, part in enumerate(parts, 1)]
        rename_all_exclusive([(p.path, f.path) for p, f in zip(parts, final, strict=True)])
        return final
    raise RuntimeError("could not plan parts under the size limit")


class _TooLarge(Exception):
    pass


def _index(path: str) -> tuple[list[_Gop], int]:
    gops: list[_Gop] = []
    first_us: int | None = None
    with av.open(path) as source:
        video = source.streams.video[0]
        for index, pkt in enumerate(source.demux()):
            if pkt.size == 0:
                continue
            if pkt.stream.index == video.index and pkt.is_keyframe:
                at_us = int((pkt.pts or 0) * video.time_base * US)  # type: ignore[operator]
                gops.append(_Gop(first_packet=index, start_us=at_us))
                first_us = at_us if first_us is None else first_us
            if not gops:
                gops.append(_Gop(first_packet=index))
            gop = gops[-1]
            gop.packets += 1
            gop.payload += pkt.size
            if pkt.stream.index == video.index:
                gop.frames += 1
                if pkt.pts is not None:
                    at = int(pkt.pts * video.time_base * US)  # type: ignore[operator]
                    gop.last_us = max(gop.last_us, at)
    return gops, first_us or 0


def _plan(gops: list[_Gop], limit: int, part_overhead: int,
          packet_overhead: int) -> list[list[_Gop]]:
    parts: list[list[_Gop]] = [[]]
    size = part_overhead
    for gop in gops:
        cost = gop.payload + gop.packets * packet_overhead
        if parts[-1] and size + cost > limit:
            parts.append([])
            size = part_overhead
        parts[-1].append(gop)
        size += cost
    return parts


def _part_path(path: str, number: int, part: PartFile, device_name: str, device_id: int,
               fmt: str) -> str:
    """``<device name>_<deviceid>_<first frame>_partNNN.ext`` beside ``path``."""
    return os.path.join(os.path.dirname(path),
                        part_name(device_name, device_id, part.first_frame_us, fmt, number))


def _write_part(path: str, tmp: str, part: list[_Gop], fmt: str, start_us: int, title: str,
                comment: str, should_stop: Callable[[], bool]) -> PartFile:
    """Write the GOPs of ``part`` into ``tmp``; its last frame and gaps are set later."""
    from sense_plugin.media.remux import OUTPUT_FORMATS  # remux imports the cutter

    muxer, options = OUTPUT_FORMATS[fmt]
    first = part[0].first_packet
    end = part[-1].first_packet + part[-1].packets  # packets are consecutive per GOP
    sink = HashingSink(tmp, should_stop=should_stop, hash_while_writing=fmt != "mkv",
                       mp4_header_room=fmt == "mp4")  # created exclusively
    try:
        with sink, av.open(path) as source:
            with av.open(sink, "w", format=muxer, options=options) as output:
                output.metadata.update(file_metadata(start_us, title, comment))
                _copy(source, output, first, end, should_stop)
            if fmt == "mp4":
                sink.finish_mp4_header()
            sink.close()
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    file_dev, file_ino = sink.identity
    return PartFile(tmp, sink.size_bytes, sink.sha256, file_dev, file_ino, start_us, start_us,
                    sum(g.frames for g in part), gops=len(part))


def _copy(source: av.container.InputContainer, output: av.container.OutputContainer,
          first: int, end: int, should_stop: Callable[[], bool]) -> None:
    """Packets ``[first, end)`` of the demux order, every stream shifted to start at 0."""
    streams = {s.index: output.add_stream_from_template(s) for s in source.streams
               if s.type in ("video", "audio")}
    shift_us: int | None = None
    counted = 0
    for index, pkt in enumerate(source.demux()):
        if index >= end:
            break
        if index < first or pkt.size == 0 or pkt.stream.index not in streams:
            continue
        counted += 1
        if counted % 64 == 0 and should_stop():
            raise CutCancelled()
        tb = pkt.time_base
        assert tb is not None
        if shift_us is None:
            shift_us = int((pkt.dts if pkt.dts is not None else pkt.pts or 0) * tb * US)
        shift = int(shift_us / (tb * US))
        if pkt.pts is not None:
            pkt.pts -= shift
        if pkt.dts is not None:
            pkt.dts -= shift
        pkt.stream = streams[pkt.stream.index]
        output.mux(pkt)


def _finish(written: list[PartFile], plan: list[list[_Gop]], archive: int,
            result: CutResult, limit: int) -> list[PartFile]:
    """Last frame times, gaps (a gap belongs to the part it starts in) and oversize."""
    parts = []
    for number, part in enumerate(written):
        nxt = plan[number + 1][0].start_us + archive if number + 1 < len(plan) else None
        parts.append(dataclasses.replace(
            part, last_frame_us=result.last_frame_us if nxt is None
            else plan[number][-1].last_us + archive,
            gaps=gaps_from(result.gaps, part.first_frame_us, nxt),
            oversize=part.gops == 1 and part.size_bytes > limit))
    return parts


def _remove(written: list[PartFile]) -> None:
    for part in written:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part.path)
