"""The case bundle's layout (``export/bundle.py``): classic ZIP while every field fits, ZIP64
where one would overflow, each archive read back by ``zipfile``, ``unzip`` and ``bsdtar``."""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest
from ziporacles import (
    bsdtar_stream,
    needs_readers,
    unzip_member,
    unzip_test,
    write_sparse,
    zipinfo_versions,
)

from sense_plugin.export.bundle import CrcMemo, Member, blocks, layout

ZIP64_END = struct.pack("<I", 0x06064B50)
ZIP64_LOCATOR = struct.pack("<I", 0x07064B50)
SMALL = [Member("Cam 1/é.mp4", 5, data=b"hello"), Member("empty", 0, data=b""),
         Member("x.bin", 1000, data=bytes(range(250)) * 4)]
#: SHA-256 of SMALL's bundle as the layout wrote it before it knew ZIP64: a small bundle served
#: again after an upgrade is the same file, byte for byte.
SMALL_SHA256 = "c656009c65be67da2f4d85f4f5fef3021a71151dd83e32f1ddc95f820f654f87"


def bundle_bytes(members: list[Member], **limits: int) -> bytes:
    pieces, size = layout(members, CrcMemo(), **limits)
    data = b"".join(blocks(pieces, 0, size - 1))
    assert len(data) == size
    return data


def has_zip64_end(data: bytes) -> bool:
    """The ZIP64 locator sits just before the 22-byte end record (the bundle has no comment)."""
    return data[-42:-38] == ZIP64_LOCATOR and data[-98:-94] == ZIP64_END


@needs_readers
def test_a_small_bundle_is_the_classic_zip_it_always_was(tmp_path: Path) -> None:
    data = bundle_bytes(SMALL)
    assert hashlib.sha256(data).hexdigest() == SMALL_SHA256
    headers = sum(30 + 46 + 2 * len(m.name.encode()) for m in SMALL)
    assert len(data) == headers + sum(m.size for m in SMALL) + 22  # no extra field anywhere
    assert not has_zip64_end(data)
    path = tmp_path / "small.zip"
    path.write_bytes(data)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        assert {i.extract_version for i in archive.infolist()} == {10}
        assert [archive.read(m.name) for m in SMALL] == [m.data for m in SMALL]
    unzip_test(path)
    assert set(zipinfo_versions(path).values()) == {"1.0"}


@needs_readers
def test_zip64_fields_where_a_size_or_an_offset_reaches_the_limit(tmp_path: Path) -> None:
    # with the limit at 100 bytes: small and near, big and near, small and far, big and far
    members = [Member("near.txt", 10, data=b"0123456789"),
               Member("big near.bin", 300, data=os.urandom(300)),
               Member("far.txt", 5, data=b"abcde"),
               Member("big far.bin", 400, data=os.urandom(400)),
               Member("empty far", 0, data=b"")]
    data = bundle_bytes(members, zip64_from=100)
    assert has_zip64_end(data)
    path = tmp_path / "forced.zip"
    path.write_bytes(data)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        infos = archive.infolist()
        assert [i.filename for i in infos] == [m.name for m in members]
        assert [i.file_size for i in infos] == [m.size for m in members]
        assert [i.extract_version for i in infos] == [10, 45, 45, 45, 45]
        assert [archive.read(m.name) for m in members] == [m.data for m in members]
    unzip_test(path)
    assert zipinfo_versions(path) == {"near.txt": "1.0", "big near.bin": "4.5", "far.txt": "4.5",
                                      "big far.bin": "4.5", "empty far": "4.5"}
    for member in members:
        assert unzip_member(path, member.name) == member.data
        assert bsdtar_stream(path, member.name) == member.data  # the local headers' sizes
    # under the real limit, the classic layout: shorter by the ZIP64 extra fields (local
    # 2 × 20, central 20 + 12 + 28 + 12) and the ZIP64 end record and locator (56 + 20)
    assert len(bundle_bytes(members)) == len(data) - 188


@needs_readers
def test_65535_members_or_more_end_with_the_zip64_record(tmp_path: Path) -> None:
    assert not has_zip64_end(bundle_bytes([Member(f"{n}", 1, data=b"x") for n in range(65534)]))
    members = [Member(f"{n:05}", 1, data=bytes([n % 256])) for n in range(65536)]
    data = bundle_bytes(members)
    assert has_zip64_end(data)
    path = tmp_path / "many.zip"
    path.write_bytes(data)
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == [m.name for m in members]
        assert archive.testzip() is None
        assert archive.read("65535") == b"\xff"
    assert unzip_test(path).count("OK\n") == 65536
    assert bsdtar_stream(path, "65535") == b"\xff"


@needs_readers
@pytest.mark.timeout(300)  # 4 GiB read three times (layout, zipfile, unzip): 40 s alone here
def test_a_member_past_4_gib_in_a_sparse_file(tmp_path: Path) -> None:
    size = 2**32 + 4099
    source = tmp_path / "camera.mp4"
    fd = os.open(source, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.ftruncate(fd, size)  # a hole, but for the bytes written at the start, 4 GiB and end
        for at, length in ((0, 4096), (2**32 - 100, 200), (size - 999, 999)):
            os.pwrite(fd, os.urandom(length), at)
        members = [Member("first.txt", 3, data=b"abc"), Member("camera.mp4", size, fd=fd),
                   Member("after.txt", 4, data=b"tail")]
        pieces, total = layout(members, CrcMemo())
        path = tmp_path / "big.zip"
        write_sparse(pieces, total, path)
        with zipfile.ZipFile(path) as archive:
            assert archive.namelist() == ["first.txt", "camera.mp4", "after.txt"]
            assert archive.getinfo("camera.mp4").file_size == size
            assert archive.getinfo("after.txt").header_offset > 2**32
            assert archive.read("after.txt") == b"tail"
            with archive.open("camera.mp4") as member:  # its CRC is checked at its end
                at = 0
                while data := member.read(1 << 20):
                    assert data == os.pread(fd, len(data), at)
                    at += len(data)
            assert at == size
    finally:
        os.close(fd)
    assert "testing: camera.mp4               OK" in unzip_test(path)
    assert unzip_member(path, "after.txt") == b"tail"
    assert zipinfo_versions(path) == {"first.txt": "1.0", "camera.mp4": "4.5",
                                      "after.txt": "4.5"}
    listing = subprocess.run(["bsdtar", "-tvf", str(path)], capture_output=True, text=True,
                             check=True).stdout
    assert f" {size} " in listing


@pytest.mark.parametrize("first,last", [(0, 0), (40, 350), (1000, 1600), (-200, -1)])
def test_any_byte_range_of_a_zip64_bundle_is_the_same_bytes(first: int, last: int) -> None:
    members = [Member("a", 300, data=os.urandom(300)), Member("b", 700, data=os.urandom(700))]
    pieces, size = layout(members, CrcMemo(), zip64_from=256)
    whole = b"".join(blocks(pieces, 0, size - 1))
    first, last = first % size, last % size
    assert b"".join(blocks(pieces, first, last)) == whole[first:last + 1]
