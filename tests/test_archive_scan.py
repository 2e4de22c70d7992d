"""Rebuilding and reconciling the index from device directories; bad files; partials."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import pytest

from sense_plugin.archive.index import ArchiveIndex
from sense_plugin.archive.scan import reconcile_device
from sense_plugin.archive.writer import SegmentWriter, partial_name

WriteSegment = Callable[..., Path]
DEV = 9890179877273119875
T0 = 1_795_168_800_000_000
S = 1_000_000


@pytest.fixture
def index(tmp_path: Path) -> Iterator[ArchiveIndex]:
    idx = ArchiveIndex(tmp_path / "archive.sqlite3")
    yield idx
    idx.close()


@pytest.fixture
def device_dir(tmp_path: Path) -> Path:
    return tmp_path / "archive" / str(DEV)


def test_rebuild_from_files(index: ArchiveIndex, device_dir: Path,
                            write_segment: WriteSegment) -> None:
    for start_s in (0, 2, 6):
        write_segment(device_dir, T0 + start_s * S, duration_s=2.0)
    report = reconcile_device(index, DEV, device_dir)
    assert report.added == 3 and report.bad == 0
    assert index.intervals(DEV, T0, T0 + 60 * S) == [(T0, T0 + 4 * S), (T0 + 6 * S, T0 + 8 * S)]
    assert not reconcile_device(index, DEV, device_dir).changed  # nothing probed twice


def test_missing_directory_is_empty(index: ArchiveIndex, tmp_path: Path) -> None:
    assert not reconcile_device(index, DEV, tmp_path / "nowhere", recover=True).changed


def test_files_added_removed_and_changed_while_down(index: ArchiveIndex, device_dir: Path,
                                                    write_segment: WriteSegment) -> None:
    first = write_segment(device_dir, T0, duration_s=2.0)
    write_segment(device_dir, T0 + 2 * S, duration_s=2.0)
    reconcile_device(index, DEV, device_dir)
    first.unlink()
    write_segment(device_dir, T0 + 10 * S, duration_s=2.0)
    write_segment(device_dir, T0 + 2 * S, duration_s=3.0)  # same name, longer: re-probed
    report = reconcile_device(index, DEV, device_dir)
    assert (report.removed, report.added) == (1, 2)
    assert index.intervals(DEV, T0, T0 + 60 * S) == [(T0 + 2 * S, T0 + 5 * S),
                                                     (T0 + 10 * S, T0 + 12 * S)]


def _audio_only(path: Path) -> None:
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16_000, layout="mono")
        frame = av.AudioFrame(format="fltp", layout="mono", samples=1024)
        frame.planes[0].update(bytes(4096))
        frame.sample_rate, frame.pts, frame.time_base = 16_000, 0, Fraction(1, 16_000)
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def test_bad_files_are_skipped_logged_and_remembered(
        index: ArchiveIndex, device_dir: Path, write_segment: WriteSegment,
        caplog: pytest.LogCaptureFixture) -> None:
    good = write_segment(device_dir, T0, duration_s=2.0)
    (device_dir / "20261120T100100.000000Z.mp4").touch()
    (device_dir / "20261120T100200.000000Z.mp4").write_bytes(os.urandom(10_000))
    (device_dir / "20261120T100300.000000Z.mp4").write_bytes(good.read_bytes()[:3000])
    _audio_only(device_dir / "20261120T100400.000000Z.mp4")
    (device_dir / "notes.txt").write_text("not a segment")
    with caplog.at_level(logging.WARNING):
        report = reconcile_device(index, DEV, device_dir)
    assert (report.added, report.bad) == (1, 4)
    assert caplog.text.count("skipping bad segment file") == 4
    assert index.recorded_range(DEV) == (T0, T0 + 2 * S)
    caplog.clear()
    assert not reconcile_device(index, DEV, device_dir).changed
    assert "skipping" not in caplog.text
    (device_dir / "20261120T100100.000000Z.mp4").unlink()  # bad rows go with their files
    assert reconcile_device(index, DEV, device_dir).removed == 1


def test_overlapping_segments(index: ArchiveIndex, device_dir: Path,
                              write_segment: WriteSegment) -> None:
    write_segment(device_dir, T0, duration_s=4.0)
    write_segment(device_dir, T0 + 1 * S, duration_s=2.0)  # inside the first: not served
    write_segment(device_dir, T0 + 3 * S, duration_s=3.0)  # partly overlapping: served
    report = reconcile_device(index, DEV, device_dir)
    assert (report.added, report.overlapping) == (2, 1)
    spans = [(s.start_us - T0, s.end_us - T0) for s in index.segments(DEV, T0, T0 + 60 * S)]
    assert spans == [(0, 4 * S), (3 * S, 6 * S)]
    assert index.intervals(DEV, T0, T0 + 60 * S) == [(T0, T0 + 6 * S)]


def _crashed_partial(source: Path, directory: Path, start_us: int) -> Path:
    """What a recorder leaves when killed mid-segment: a torn fragmented MP4 partial."""
    with av.open(str(source)) as container:
        video = container.streams.video[0]
        writer = SegmentWriter(directory, "mp4", start_us, [video])
        for packet in container.demux(video):
            if packet.size:
                writer.write(packet, video.index)
        snapshot = writer.tmp_path.read_bytes()
        writer.abort()
    torn = writer.tmp_path
    torn.write_bytes(snapshot[: len(snapshot) - 300])  # the last fragment is cut short
    return torn


def test_crashed_recorder_partials(index: ArchiveIndex, device_dir: Path, tmp_path: Path,
                                   write_segment: WriteSegment) -> None:
    source = write_segment(tmp_path / "src", T0, duration_s=4.0)
    readable = _crashed_partial(source, device_dir, T0 + 100 * S)
    garbage = device_dir / partial_name("20261120T100500.000000Z.mp4")
    garbage.write_bytes(os.urandom(5000))
    stale_demo = device_dir / ".20261120T100600.000000Z.mp4.4242.part"
    fresh_demo = device_dir / ".20261120T100700.000000Z.mp4.4243.part"
    for path in (stale_demo, fresh_demo):
        path.write_bytes(b"x")
    os.utime(stale_demo, (1, 1))
    report = reconcile_device(index, DEV, device_dir, recover=True)
    assert (report.recovered, report.discarded, report.added) == (1, 2, 1)
    assert not readable.exists() and not garbage.exists() and not stale_demo.exists()
    assert fresh_demo.exists()  # may still be being written by a running generator
    (segment,) = index.segments(DEV, T0, T0 + 3600 * S)
    assert segment.start_us == T0 + 100 * S
    assert 3 * S <= segment.end_us - segment.start_us < 4 * S  # the torn tail is gone


def test_settling_files_wait(index: ArchiveIndex, device_dir: Path,
                             write_segment: WriteSegment) -> None:
    write_segment(device_dir, T0, duration_s=1.0)
    assert reconcile_device(index, DEV, device_dir, settle_s=60).added == 0
    assert reconcile_device(index, DEV, device_dir).added == 1


def test_deleted_directory_empties_the_device(index: ArchiveIndex, device_dir: Path,
                                              write_segment: WriteSegment) -> None:
    write_segment(device_dir, T0, duration_s=1.0)
    reconcile_device(index, DEV, device_dir)
    shutil.rmtree(device_dir)
    assert reconcile_device(index, DEV, device_dir).removed == 1
    assert index.recorded_range(DEV) is None
