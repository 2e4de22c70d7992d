"""Durations for fragmented MP4 headers, written in place once the file is complete.

FFmpeg's fragmented MP4 (``empty_moov``) states duration 0 in ``mvhd``/``tkhd``/``mdhd`` and
has no ``mehd``: a player fed without Range requests shows a wrong length. The export stays
fragmented (streamed, readable up to its last fragment if the writer dies) and, when it is
complete, :func:`finish` fills in the durations computed from its fragments and adds ``mehd``.
The room for ``mehd`` is a ``free`` box the sink put after ``moov`` while writing
(:class:`HeaderReserve`), so no byte after the header moves.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

#: Size of the ``free`` box inserted after ``moov``: room for ``mehd`` (20 bytes) and more.
RESERVE_BYTES = 64
_MEHD_BYTES = 20  # version 1: 64-bit fragment duration
_CONTAINERS = {b"moov", b"trak", b"mdia", b"mvex", b"moof", b"traf"}


def free_box(size: int) -> bytes:
    """A ``free`` box of ``size`` bytes (header included)."""
    return struct.pack(">I4s", size, b"free") + bytes(size - 8)


class HeaderReserve:
    """Finds the end of ``moov`` in the bytes a muxer writes, to insert a ``free`` box there.

    Feed the leading bytes with :meth:`feed`; once it returns an offset, that is where the
    reserve goes (muxer positions at or after it move by :data:`RESERVE_BYTES`).
    """

    def __init__(self) -> None:
        self.head = bytearray()

    def feed(self, data: bytes) -> int | None:
        """Add bytes; the offset just after ``moov`` once it is complete, else None."""
        self.head += data
        offset = 0
        while offset + 8 <= len(self.head):
            size, kind = struct.unpack_from(">I4s", self.head, offset)
            if size < 8 or kind not in (b"ftyp", b"moov", b"free", b"styp"):
                return -1  # not the header this class expects: give up, insert nothing
            if kind == b"moov" and offset + size <= len(self.head):
                return int(offset + size)
            offset += size
        return None


@dataclass
class _Box:
    kind: bytes
    start: int  # offset of the box header in the buffer
    size: int
    body: int  # offset of the payload (after the header)


def _boxes(data: bytes | bytearray, start: int, end: int) -> Iterator[_Box]:
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, offset)
        body = offset + 8
        if size == 1:
            size = struct.unpack_from(">Q", data, offset + 8)[0]
            body += 8
        if size < 8 or offset + size > end:
            return
        yield _Box(kind, offset, size, body)
        offset += size


@dataclass
class _Track:
    track_id: int = 0
    timescale: int = 0
    tkhd: int = -1  # offsets of the version byte of each full box
    mdhd: int = -1
    default_duration: int = 0  # from trex
    end: int = 0  # media time past the last sample (decoding order: the media duration)
    shown_end: int = 0  # media time past the last sample shown (composition offsets added)
    empty: int = 0  # empty edits (movie timescale): the track starts this late
    media_start: int = 0  # media time the edit list starts playing from
    fields: dict[str, int] = field(default_factory=dict)


def finish(handle: BinaryIO) -> bool:
    """Fill in the durations of a complete fragmented MP4 opened ``r+b``; True if done."""
    handle.seek(0)
    head = handle.read(1 << 20)
    layout = _layout(head)
    if layout is None:
        return False
    _fragment_ends(handle, layout.free.start + layout.free.size, layout.tracks)
    handle.seek(layout.moov.start)
    handle.write(_stated(head, layout)[layout.moov.start:])
    return True


def track_timescales(head: bytes) -> dict[int, int]:
    """Track id → media timescale, from a header (``ftyp``, ``moov``, the ``free`` room)."""
    layout = _layout(head)
    return {} if layout is None else {t.track_id: t.timescale
                                      for t in layout.tracks.values()}


def stated_header(head: bytes, ends: dict[int, tuple[int, int]]) -> bytes | None:
    """The bytes ``head[:end of the free room]`` become when :func:`finish` finds, for each
    track id, ``(media time past its last sample, past its last sample shown)``.

    Lets the header be known before the fragments are written (the sink hashes the file in
    order while it is written, then checks the header :func:`finish` wrote against this). None
    when ``head`` is not the layout :func:`finish` expects or a track's ends are missing.
    """
    layout = _layout(head)
    if layout is None or set(ends) != set(layout.tracks):
        return None
    for track_id, (end, shown_end) in ends.items():
        layout.tracks[track_id].end, layout.tracks[track_id].shown_end = end, shown_end
    return _stated(head, layout)


@dataclass
class _Layout:
    moov: _Box
    free: _Box  # the room after moov
    movie_scale: int
    mvhd: int
    tracks: dict[int, _Track]
    mvex: _Box


def _layout(head: bytes) -> _Layout | None:
    top = list(_boxes(head, 0, len(head)))
    moov = next((b for b in top if b.kind == b"moov"), None)
    after = moov.start + moov.size if moov is not None else -1
    free = next((b for b in top if b.kind == b"free" and b.start == after), None)
    if moov is None or free is None or free.size < _MEHD_BYTES + 8:
        return None
    movie_scale, mvhd, tracks, mvex = _parse_moov(head, moov)
    if mvhd < 0 or mvex is None or not tracks:
        return None
    return _Layout(moov, free, movie_scale, mvhd, tracks, mvex)


def _stated(head: bytes, layout: _Layout) -> bytes:
    """``head`` up to the end of the room, with the durations of ``layout.tracks`` and mehd."""
    moov, free, movie_scale = layout.moov, layout.free, layout.movie_scale
    new = bytearray(head[moov.start : moov.start + moov.size])
    shift = -moov.start
    movie = 0
    for track in layout.tracks.values():
        if not track.timescale:
            continue
        shown = max(track.shown_end - track.media_start, 0)
        in_movie = track.empty + shown * movie_scale // track.timescale
        movie = max(movie, in_movie)
        _set_duration(new, track.mdhd + shift, track.end, 16)
        _set_duration(new, track.tkhd + shift, in_movie, 20)
    _set_duration(new, layout.mvhd + shift, movie, 16)
    mehd = struct.pack(">I4sB3xQ", _MEHD_BYTES, b"mehd", 1, movie)
    at = layout.mvex.body + shift
    new[at:at] = mehd
    _grow(new, 0, _MEHD_BYTES)
    _grow(new, layout.mvex.start + shift, _MEHD_BYTES)
    return bytes(head[: moov.start]) + bytes(new) + free_box(free.size - _MEHD_BYTES)


def _parse_moov(head: bytes, moov: _Box) -> tuple[int, int, dict[int, _Track], _Box | None]:
    scale, mvhd, mvex = 1000, -1, None
    tracks: dict[int, _Track] = {}
    for box in _boxes(head, moov.body, moov.start + moov.size):
        if box.kind == b"mvhd":
            mvhd = box.body
            version = head[box.body]
            scale = struct.unpack_from(">I", head, box.body + (20 if version else 12))[0]
        elif box.kind == b"trak":
            track = _parse_trak(head, box)
            tracks[track.track_id] = track
        elif box.kind == b"mvex":
            mvex = box
            for trex in _boxes(head, box.body, box.start + box.size):
                if trex.kind == b"trex":
                    tid, _, duration = struct.unpack_from(">III", head, trex.body + 4)
                    if tid in tracks:
                        tracks[tid].default_duration = duration
    return scale, mvhd, tracks, mvex


def _parse_trak(head: bytes, trak: _Box) -> _Track:
    track = _Track()
    for box in _boxes(head, trak.body, trak.start + trak.size):
        if box.kind == b"tkhd":
            track.tkhd = box.body
            track.track_id = struct.unpack_from(">I", head, box.body + (20 if head[box.body]
                                                                        else 12))[0]
        elif box.kind == b"edts":
            for elst in _boxes(head, box.body, box.start + box.size):
                if elst.kind == b"elst":
                    track.empty, track.media_start = _edits(head, elst.body)
        elif box.kind == b"mdia":
            for sub in _boxes(head, box.body, box.start + box.size):
                if sub.kind == b"mdhd":
                    track.mdhd = sub.body
                    track.timescale = struct.unpack_from(
                        ">I", head, sub.body + (20 if head[sub.body] else 12))[0]
    return track


def _edits(head: bytes, body: int) -> tuple[int, int]:
    """(empty edits in movie time, media time of the first real edit) of an ``elst``."""
    wide = head[body] == 1
    count = struct.unpack_from(">I", head, body + 4)[0]
    entry = ">Qq" if wide else ">Ii"
    step = 20 if wide else 12
    empty = 0
    for i in range(count):
        duration, media_time = struct.unpack_from(entry, head, body + 8 + i * step)
        if media_time < 0:
            empty += duration
        else:
            return int(empty), int(media_time)
    return int(empty), 0


def _fragment_ends(handle: BinaryIO, offset: int, tracks: dict[int, _Track]) -> None:
    """Read every ``moof`` after the header: each track's media time past its last sample."""
    while True:
        handle.seek(offset)
        header = handle.read(16)
        if len(header) < 8:
            return
        size, kind = struct.unpack_from(">I4s", header)
        if size == 1 and len(header) == 16:
            size = struct.unpack_from(">Q", header, 8)[0]
        if size < 8:
            return
        if kind == b"moof":
            handle.seek(offset)
            moof = handle.read(size)
            for traf in _boxes(moof, 8, len(moof)):
                if traf.kind == b"traf":
                    _traf_end(moof, traf, tracks)
        offset += size


def _traf_end(data: bytes, traf: _Box, tracks: dict[int, _Track]) -> None:
    track: _Track | None = None
    at = default = 0
    for box in _boxes(data, traf.body, traf.start + traf.size):
        flags = int.from_bytes(data[box.body + 1 : box.body + 4], "big")
        if box.kind == b"tfhd":
            track = tracks.get(struct.unpack_from(">I", data, box.body + 4)[0])
            where = box.body + 8 + (8 if flags & 1 else 0) + (4 if flags & 2 else 0)
            default = struct.unpack_from(">I", data, where)[0] if flags & 8 else 0
        elif box.kind == b"tfdt":
            at = struct.unpack_from(">Q" if data[box.body] else ">I", data, box.body + 4)[0]
        elif box.kind == b"trun" and track is not None:
            at = _trun(data, box.body, flags, default or track.default_duration, at, track)


def _trun(data: bytes, body: int, flags: int, default: int, at: int, track: _Track) -> int:
    """Walk a ``trun`` from decode time ``at``; updates the track's ends, returns the new time."""
    count = struct.unpack_from(">I", data, body + 4)[0]
    where = body + 8 + (4 if flags & 1 else 0) + (4 if flags & 4 else 0)
    fields = [bit for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit]
    for i in range(count):
        values = dict(zip(fields, struct.unpack_from(">" + "I" * len(fields), data,
                                                     where + i * 4 * len(fields)), strict=True))
        duration = values.get(0x100, default)
        offset = values.get(0x800, 0)
        offset -= (1 << 32) if offset >= 1 << 31 else 0  # version 1: signed offsets
        track.shown_end = max(track.shown_end, at + offset + duration)
        at += duration
    track.end = max(track.end, at)
    return int(at)


def _set_duration(buf: bytearray, full_box: int, value: int, v0_offset: int) -> None:
    """Write ``value`` into the duration of an mvhd (v0 offset 16), tkhd or mdhd (20) box."""
    if full_box < 0:
        return
    if buf[full_box]:  # version 1: 64-bit times, duration 12 bytes further on
        struct.pack_into(">Q", buf, full_box + v0_offset + 8, value)
    elif value <= 0xFFFFFFFF:
        struct.pack_into(">I", buf, full_box + v0_offset, value)


def _grow(buf: bytearray, box_start: int, extra: int) -> None:
    size = struct.unpack_from(">I", buf, box_start)[0]
    struct.pack_into(">I", buf, box_start, size + extra)
