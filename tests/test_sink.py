"""Tests of the hashing, paced export sink (sense_plugin.media.sink)."""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

import av
import pytest
from fsfull import file_size_limit

from sense_plugin import naming
from sense_plugin.errors import StorageError
from sense_plugin.media import sinkwork
from sense_plugin.media.cutspec import SourceRange
from sense_plugin.media.remux import CutRequest, SourceSegment, cut
from sense_plugin.media.sink import HashingSink, WriteCancelled
from sense_plugin.media.throttle import TokenBucket

MakeSegments = Callable[..., list[Path]]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sequential_writes_hash_in_one_pass(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    sink = HashingSink(path)
    for i in range(100):
        sink.write(bytes([i]) * (1000 + i))
    sink.close()
    assert not sink.rewrote and sink.seeks == 0
    assert sink.size_bytes == sink.bytes_written == path.stat().st_size
    assert sink.sha256 == file_sha256(path)


def test_seek_back_and_overwrite_rehashes_at_close(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    sink = HashingSink(path, fsync=False)
    sink.write(b"header--" + b"x" * 1000)
    assert sink.seek(0) == 0
    sink.write(b"HEADER")
    assert sink.seek(0, os.SEEK_END) == 1008
    sink.write(b"tail")
    sink.close()
    assert sink.rewrote
    assert path.read_bytes().startswith(b"HEADER--")
    assert sink.size_bytes == 1012 and sink.bytes_written == 1018
    assert sink.sha256 == file_sha256(path)


def test_hash_from_file_only(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    sink = HashingSink(path, hash_while_writing=False)
    sink.write(b"abc" * 1000)
    sink.close()
    assert not sink.rewrote
    assert sink.sha256 == file_sha256(path)


def test_digest_only_after_close(tmp_path: Path) -> None:
    sink = HashingSink(tmp_path / "out.bin")
    with pytest.raises(RuntimeError):
        _ = sink.sha256
    sink.close()
    sink.close()  # idempotent
    assert sink.sha256 == hashlib.sha256(b"").hexdigest()


def test_full_disk_is_a_storage_error(tmp_path: Path) -> None:
    with file_size_limit(50_000), pytest.raises(StorageError), \
            HashingSink(tmp_path / "out.bin", fsync=False) as sink:
        sink.write(b"x" * 100_000)


def test_temporary_file_is_created_exclusively_never_through_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "victim").write_bytes(b"keep")
    os.symlink(tmp_path / "victim", tmp_path / "link.part")
    with pytest.raises(OSError):
        HashingSink(tmp_path / "link.part", fsync=False)
    (tmp_path / "taken.part").write_bytes(b"old")
    with pytest.raises(FileExistsError):
        HashingSink(tmp_path / "taken.part", fsync=False)
    assert (tmp_path / "victim").read_bytes() == b"keep"


def test_paced_writes_are_split_and_accounted(tmp_path: Path) -> None:
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    bucket = TokenBucket(800, clock=lambda: clock[0], sleep=sleep)  # 100 000 bytes/s
    sink = HashingSink(tmp_path / "out.bin", throttle=bucket)
    sink.write(b"z" * 1_000_000)
    sink.close()
    assert clock[0] == pytest.approx(9.9, abs=0.01)  # 10 s of data less the 0.1 s burst
    assert sink.sha256 == file_sha256(tmp_path / "out.bin")


def test_cancel_while_waiting_for_bandwidth(tmp_path: Path) -> None:
    sink = HashingSink(tmp_path / "out.bin", throttle=TokenBucket(8), should_stop=lambda: True)
    with pytest.raises(WriteCancelled):
        sink.write(b"z" * 1_000_000)
    sink.close()


@pytest.mark.parametrize(
    ("fmt", "options", "seeks"),
    [
        ("mp4", {"movflags": "frag_keyframe+empty_moov+default_base_moof"}, False),
        ("mpegts", {}, False),
        ("matroska", {}, True),
        ("mp4", {}, True),
    ],
    ids=["fragmented-mp4", "mpegts", "matroska", "plain-mp4"],
)
def test_which_muxers_seek(
    tmp_path: Path, make_segments: MakeSegments, fmt: str, options: dict[str, str], seeks: bool
) -> None:
    """Fragmented MP4 and MPEG-TS only append; Matroska and plain MP4 go back and patch."""
    source = make_segments()[0]
    path = tmp_path / "out.bin"
    with HashingSink(path, fsync=False) as sink:
        with av.open(str(source)) as src, av.open(sink, "w", format=fmt, options=options) as out:
            stream = out.add_stream_from_template(src.streams.video[0])
            for packet in src.demux(src.streams.video[0]):
                if packet.size:
                    packet.stream = stream
                    out.mux(packet)
        sink.close()
    assert sink.rewrote is seeks
    assert sink.sha256 == file_sha256(path)


# -- the digest is of the bytes written through the sink's own descriptor -------------------------


def _swap_after_last_write(monkeypatch: pytest.MonkeyPatch, path: Path, stash: Path) -> None:
    """An adversary who, once the muxer has written its last byte, moves the file away and puts
    a forged one under its name: done from the sink's own step that follows the last write."""
    finish = sinkwork.HashThread.finish

    def swap_then_finish(self: sinkwork.HashThread):  # type: ignore[no-untyped-def]
        if path.exists() and not stash.exists():
            os.rename(path, stash)
            path.write_bytes(b"forged" * 1000)
        return finish(self)

    monkeypatch.setattr(sinkwork.HashThread, "finish", swap_then_finish)


@pytest.mark.parametrize(
    ("fmt", "options", "live", "header_room"),
    [
        ("matroska", {}, False, False),
        ("mp4", {"movflags": "frag_keyframe+empty_moov+delay_moov+default_base_moof"
                             "+skip_trailer"}, True, True),
        ("mpegts", {}, True, False),
    ],
    ids=["matroska", "fragmented-mp4", "mpegts"],
)
def test_a_file_swapped_after_the_last_write_is_not_what_is_hashed(
    tmp_path: Path, make_segments: MakeSegments, monkeypatch: pytest.MonkeyPatch,
    fmt: str, options: dict[str, str], live: bool, header_room: bool,
) -> None:
    """The file put back before the rename holds the bytes the digest names, and only those."""
    source = make_segments()[0]
    path, stash = tmp_path / "out.part", tmp_path / "moved-away"
    _swap_after_last_write(monkeypatch, path, stash)
    with HashingSink(path, hash_while_writing=live, mp4_header_room=header_room) as sink:
        with av.open(str(source)) as src, av.open(sink, "w", format=fmt, options=options) as out:
            stream = out.add_stream_from_template(src.streams.video[0])
            for packet in src.demux(src.streams.video[0]):
                if packet.size:
                    packet.stream = stream
                    out.mux(packet)
        if header_room:
            sink.finish_mp4_header()
        sink.close()
    assert stash.exists(), "the swap did not happen"
    assert sink.sha256 != file_sha256(path)  # the forged file is not what was signed
    os.replace(stash, path)  # put back before the rename
    assert sink.sha256 == file_sha256(path)
    st = path.stat()
    assert sink.identity == (st.st_dev, st.st_ino)
    assert sink.size_bytes == st.st_size


@pytest.mark.parametrize("fmt", ["mkv", "mp4", "ts"])
def test_a_cut_swapped_before_its_rename_names_the_file_it_wrote(
    tmp_path: Path, make_segments: MakeSegments, monkeypatch: pytest.MonkeyPatch, fmt: str,
) -> None:
    """Through the whole cut: digest and identity are those of the file written, so the swapped
    file now under the final name matches neither (the export's identity check refuses it)."""
    segments = make_segments()
    sources = []
    for path in segments:
        start_us = naming.parse_segment_filename(path.name)
        assert start_us is not None
        sources.append(SourceSegment(str(path), start_us, start_us + 2_000_000))
    out = tmp_path / f"out.{fmt}"
    stash = tmp_path / "moved-away"
    _swap_after_last_write(monkeypatch, Path(f"{out}.part"), stash)
    result = cut(CutRequest(SourceRange(tuple(sources), sources[0].start_us, sources[-1].end_us),
                            str(out), fmt))
    assert stash.exists(), "the swap did not happen"
    written, forged = stash.stat(), out.stat()
    assert result.sha256 == file_sha256(stash) != file_sha256(out)
    assert (result.file_dev, result.file_ino) == (written.st_dev, written.st_ino)
    assert result.file_ino != forged.st_ino
    assert result.size_bytes == written.st_size


def test_a_large_file_is_written_back_while_written_and_the_thread_ends(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    block = os.urandom(1024 * 1024)
    sink = HashingSink(path)
    for _ in range(sinkwork.WRITEBACK_BYTES // len(block) * 2 + 3):
        sink.write(block)
    sink.close()
    assert sink.sha256 == file_sha256(path)
    assert sink.size_bytes == path.stat().st_size
    assert not [t for t in threading.enumerate() if t.name == "sink-writeback"]


@pytest.mark.parametrize(("code", "raised"), [(errno.EIO, OSError), (errno.ENOSPC, StorageError)])
def test_a_failed_background_write_back_fails_the_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, raised: type[Exception]
) -> None:
    """The kernel reports a write-back error to one sync call per descriptor: the one the
    background thread made must not be lost, or a file never durable would get a digest."""

    def failing_fdatasync(fd: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fdatasync", failing_fdatasync)
    sink = HashingSink(tmp_path / "out.bin")
    for _ in range(sinkwork.WRITEBACK_BYTES // (1024 * 1024) + 1):
        sink.write(b"x" * 1024 * 1024)
    with pytest.raises(raised):
        sink.close()
    with pytest.raises(RuntimeError):
        _ = sink.sha256  # no digest for a file that may not be on disk
