"""The case bundle's layout: a stored (uncompressed) ZIP of an export, sized up front.

Every member is stored as it is, with its CRC-32 in its local header (computed before the
first byte is sent, and remembered by the server's :class:`CrcMemo`), so the whole archive is
a fixed sequence of headers and file bytes: its size is known before it is sent and any byte
range of it can be read without producing what comes before (``docs/custody.rst``).

ZIP64 (PKWARE's APPNOTE 4.5.3, 4.3.14 to 4.3.16) is written only where a field would overflow:
a member of 4 GiB or more carries its sizes in a ZIP64 extra field (local header and central
directory), a member starting past 4 GiB carries its offset there, and an archive whose
central directory starts past 4 GiB (or is that large), or that has 65 535 members or more,
ends with the ZIP64 end record and its locator. Each entry or record that uses ZIP64 says
version 4.5 is needed; an archive that needs none of it is the classic ZIP it always was.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

READ_BYTES = 256 * 1024
#: A size or offset this large goes to ZIP64 fields: 0xFFFFFFFF in a 32-bit field means "see
#: the ZIP64 extra field". Tests pass a lower value to :func:`layout` to write ZIP64 for a
#: small archive.
ZIP64_FROM = 0xFFFFFFFF
_MORE = 0xFFFFFFFF  # a 32-bit field whose value is in the ZIP64 extra field or end record
_MANY = 0xFFFF  # a 16-bit member count whose value is in the ZIP64 end record
_ZIP64_EXTRA = 0x0001
_STORED_VERSION = 10  # 1.0: stored members
_MADE_VERSION = 20  # 2.0, MS-DOS attributes
_ZIP64_VERSION = 45  # 4.5: ZIP64 format extensions
_UTF8_NAMES = 0x0800
_DOS_TIME = 0  # 00:00:00
_DOS_DATE = (2020 - 1980) << 9 | 1 << 5 | 1  # members carry no meaningful date


@dataclass(frozen=True)
class Member:
    """One file of the bundle: in memory (``data``) or an open descriptor (``fd``)."""

    name: str
    size: int
    data: bytes | None = None
    fd: int = -1


@dataclass(frozen=True)
class Piece:
    """A run of the archive's bytes: literal header bytes or a slice of a member's file."""

    start: int
    length: int
    data: bytes | None
    fd: int


class CrcMemo:
    """The CRC-32s of export files already read, by device, inode, size and mtime.

    One per server (the API's application owns it): a bundle asked for again is laid out
    without reading its files; nothing outside that server shares it.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._crcs: OrderedDict[tuple[int, int, int, int], int] = OrderedDict()
        self._lock = threading.Lock()

    def crc32_of(self, member: Member) -> int:
        """The member's CRC-32 (blocking: a file not seen before is read)."""
        if member.data is not None:
            return zlib.crc32(member.data)
        stat = os.fstat(member.fd)
        key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if key in self._crcs:
                self._crcs.move_to_end(key)
                return self._crcs[key]
        crc = 0
        for offset in range(0, member.size, READ_BYTES):
            crc = zlib.crc32(os.pread(member.fd, READ_BYTES, offset), crc)
        with self._lock:
            self._crcs[key] = crc
            while len(self._crcs) > self._limit:
                self._crcs.popitem(last=False)
        return crc


def layout(members: list[Member], crcs: CrcMemo,
           zip64_from: int = ZIP64_FROM) -> tuple[list[Piece], int]:
    """The archive as pieces in order, and its total size (blocking: CRCs are computed).

    A size or offset of ``zip64_from`` bytes or more is written in ZIP64 fields.
    """
    pieces: list[Piece] = []
    central = bytearray()
    offset = 0
    for member in members:
        header, entry = _headers(member, crcs.crc32_of(member), offset, zip64_from)
        central += entry
        pieces.append(Piece(offset, len(header), header, -1))
        offset += len(header)
        pieces.append(Piece(offset, member.size, member.data, member.fd))
        offset += member.size
    tail = bytes(central) + _end(len(members), len(central), offset, zip64_from)
    pieces.append(Piece(offset, len(tail), tail, -1))
    return pieces, offset + len(tail)


def _headers(member: Member, crc: int, offset: int, zip64_from: int) -> tuple[bytes, bytes]:
    """The member's local header and its central directory entry.

    Sizes and CRC are known, so they are in the local header (no data descriptor). A size of
    ``zip64_from`` or more is written 0xFFFFFFFF in both headers, the real sizes going to
    their ZIP64 extra fields (a local one must hold both); an offset that large likewise goes
    to the central entry's extra field, after the sizes (APPNOTE 4.5.3: only the fields that
    overflow, in that order).
    """
    name = member.name.encode("utf-8")
    big, far = member.size >= zip64_from, offset >= zip64_from
    size32 = _MORE if big else member.size
    sizes = [member.size, member.size] if big else []
    wide = sizes + [offset] if far else sizes
    local_extra, central_extra = _zip64_extra(sizes), _zip64_extra(wide)
    made, needed = (_ZIP64_VERSION, _ZIP64_VERSION) if wide else (_MADE_VERSION,
                                                                   _STORED_VERSION)
    header = struct.pack("<IHHHHHIIIHH", 0x04034B50, needed, _UTF8_NAMES, 0, _DOS_TIME,
                         _DOS_DATE, crc, size32, size32, len(name), len(local_extra))
    entry = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, made, needed, _UTF8_NAMES, 0,
                        _DOS_TIME, _DOS_DATE, crc, size32, size32, len(name),
                        len(central_extra), 0, 0, 0, 0, _MORE if far else offset)
    return header + name + local_extra, entry + name + central_extra


def _zip64_extra(values: list[int]) -> bytes:
    """The ZIP64 extended information extra field holding ``values`` (none: no field)."""
    if not values:
        return b""
    return struct.pack(f"<HH{len(values)}Q", _ZIP64_EXTRA, 8 * len(values), *values)


def _end(count: int, central_bytes: int, central_at: int, zip64_from: int) -> bytes:
    """The end of central directory record, after the ZIP64 end record and its locator when
    one of its fields would overflow (APPNOTE 4.3.14 to 4.3.16; one disk, numbered 0)."""
    many = count >= _MANY
    big, far = central_bytes >= zip64_from, central_at >= zip64_from
    zip64 = b""
    if many or big or far:
        zip64 = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, _ZIP64_VERSION, _ZIP64_VERSION, 0, 0,
                            count, count, central_bytes, central_at)
        zip64 += struct.pack("<IIQI", 0x07064B50, 0, central_at + central_bytes, 1)
    count16 = _MANY if many else count
    return zip64 + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count16, count16,
                               _MORE if big else central_bytes, _MORE if far else central_at,
                               0)


def blocks(pieces: list[Piece], first: int, last: int) -> Iterator[bytes]:
    """The archive's bytes ``first`` … ``last`` (inclusive) in blocks (blocking reads)."""
    for piece in pieces:
        end = piece.start + piece.length - 1
        if end < first or piece.start > last or piece.length == 0:
            continue
        begin = max(first, piece.start) - piece.start
        stop = min(last, end) - piece.start + 1
        if piece.data is not None:
            for at in range(begin, stop, READ_BYTES):
                yield piece.data[at:min(stop, at + READ_BYTES)]
            continue
        at = begin
        while at < stop:
            data = os.pread(piece.fd, min(READ_BYTES, stop - at), at)
            if not data:
                raise OSError(f"file shrank while the bundle was sent (at {at})")
            yield data
            at += len(data)
