"""The case bundle's layout: a stored (uncompressed) ZIP of an export, sized up front.

Every member is stored as it is, with its CRC-32 in its local header (computed before the
first byte is sent, and remembered by the server's :class:`CrcMemo`), so the whole archive is
a fixed sequence of headers and file bytes: its size is known before it is sent and any byte
range of it can be read without producing what comes before (``docs/custody.rst``). Archives
of 4 GiB or more would need ZIP64 and are refused.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from sense_plugin.errors import OutOfRangeError

READ_BYTES = 256 * 1024
ZIP32_LIMIT = 0xFFFFFFFF
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


def layout(members: list[Member], crcs: CrcMemo) -> tuple[list[Piece], int]:
    """The archive as pieces in order, and its total size (blocking: CRCs are computed)."""
    pieces: list[Piece] = []
    central = bytearray()
    offset = 0
    for member in members:
        name = member.name.encode("utf-8")
        crc = crcs.crc32_of(member)
        if offset + member.size >= ZIP32_LIMIT:
            raise OutOfRangeError("the case bundle would be 4 GiB or more; download the files "
                                  "one by one")
        header = struct.pack("<IHHHHHIIIHH", 0x04034B50, 10, _UTF8_NAMES, 0, _DOS_TIME,
                             _DOS_DATE, crc, member.size, member.size, len(name), 0) + name
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 10, _UTF8_NAMES, 0,
                               _DOS_TIME, _DOS_DATE, crc, member.size, member.size, len(name),
                               0, 0, 0, 0, 0, offset) + name
        pieces.append(Piece(offset, len(header), header, -1))
        offset += len(header)
        pieces.append(Piece(offset, member.size, member.data, member.fd))
        offset += member.size
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central),
                      offset, 0)
    tail = bytes(central) + end
    pieces.append(Piece(offset, len(tail), tail, -1))
    return pieces, offset + len(tail)


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
