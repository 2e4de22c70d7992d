"""archive_pattern and archive_timezone: parsing, formatting, DST, and bad patterns."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ffmpegtools import ffmpeg_segments, set_creation_time

from sense_plugin.archive.index import ArchiveIndex
from sense_plugin.archive.scan import reconcile_device
from sense_plugin.naming import (
    DEFAULT_PATTERN,
    NamePattern,
    PatternError,
    parse_segment_filename,
    segment_filename,
)
from sense_plugin.timestamps import datetime_to_us

DEV = 9890179877273119875
S = 1_000_000
T0 = 1_795_168_800_000_000  # 2026-11-20 10:00:00 UTC


def utc(*fields: int) -> int:
    return datetime_to_us(datetime(*fields, tzinfo=UTC))  # type: ignore[misc]


@pytest.mark.parametrize(("pattern", "zone", "relpath", "start_us", "precision_us"), [
    (DEFAULT_PATTERN, "UTC", "20261120T100000.250000Z.mp4", T0 + 250_000, 1),
    (DEFAULT_PATTERN, "UTC", "20261120T100000.250Z.MP4", T0 + 250_000, 1000),
    ("cam_%Y%m%d-%H%M%S.{ext}", "UTC", "cam_20261120-100007.ts", T0 + 7 * S, S),
    ("cam_%Y%m%d-%H%M%S.{ext}", "Europe/Berlin", "cam_20261120-110007.Mkv", T0 + 7 * S, S),
    ("%Y-%m-%d/%H/front_door/%M.%S.{ext}", "UTC", "2026-11-20/10/front_door/05.07.mp4",
     T0 + 307 * S, S),
    ("%Y-%m-%d/cam_%Y%m%d_%H%M.{ext}", "UTC", "2026-11-20/cam_20261120_1005.mov",
     T0 + 300 * S, 60 * S),
    ("rec_%Y%m%d%H.mp4", "UTC", "rec_2026112010.MP4", T0, 3600 * S),
])
def test_names_parse(pattern: str, zone: str, relpath: str, start_us: int,
                     precision_us: int) -> None:
    named = NamePattern(pattern, zone).parse(relpath)
    assert named is not None
    assert (named.start_us, named.precision_us, named.alt_us) == (start_us, precision_us, None)


@pytest.mark.parametrize("relpath", [
    "cam_20261120-100007.avi", "cam_20261320-100007.mp4", "cam_20261120-100007.mp4.part",
    "xcam_20261120-100007.mp4", "sub/cam_20261120-100007.mp4", "cam_20261120-10007.mp4",
])
def test_other_names_do_not_match(relpath: str) -> None:
    assert NamePattern("cam_%Y%m%d-%H%M%S.{ext}").parse(relpath) is None


def test_repeated_folder_fields_must_agree() -> None:
    pattern = NamePattern("%Y%m%d/%Y%m%d-%H%M%S.{ext}")
    assert pattern.parse("20261120/20261120-100000.mp4") is not None
    assert pattern.parse("20261121/20261120-100000.mp4") is None


def test_format_round_trips_and_default_naming_is_today_s() -> None:
    pattern = NamePattern("%Y-%m-%d/%H/cam/%M.%S.{ext}", "Europe/Berlin")
    name = pattern.format(T0 + 61 * S, "mp4")
    assert name == "2026-11-20/11/cam/01.01.mp4"
    assert pattern.parse(name) is not None and pattern.parse(name).start_us == T0 + 61 * S
    assert segment_filename(T0 + 5, "mkv") == "20261120T100000.000005Z.mkv"
    assert parse_segment_filename("20261120T100000.000005Z.mkv") == T0 + 5
    assert parse_segment_filename("20261120T100000.005Z.mkv") is None  # only ours, exactly


def test_autumn_names_are_ambiguous_and_spring_names_are_not() -> None:
    pattern = NamePattern("%Y%m%d-%H%M%S.{ext}", "Europe/Berlin")
    repeated = pattern.parse("20261025-023000.mp4")
    assert repeated is not None
    assert (repeated.start_us, repeated.alt_us) == (utc(2026, 10, 25, 0, 30),
                                                    utc(2026, 10, 25, 1, 30))
    after = pattern.parse("20260329-030000.mp4")
    assert after is not None and (after.start_us, after.alt_us) == (utc(2026, 3, 29, 1), None)


@pytest.mark.parametrize(("pattern", "problem"), [
    ("%Y%m%d-%H%M%q.{ext}", "unknown field '%q'"),
    ("camera.{ext}", "has no %Y %m %d %H field"),
    ("%Y%m%d.{ext}", "has no %H field"),
    ("%Y%m%d%H%M%S.avi", "needs '{ext}'"),
    ("/abs/%Y%m%d%H.{ext}", "relative path"),
    ("../%Y%m%d%H.{ext}", "'..'"),
    ("%Y%m%d%H{name}.{ext}", "stray"),
    ("%Y%m%d%H%S.{ext}", "%S needs %M"),
])
def test_bad_patterns(pattern: str, problem: str) -> None:
    with pytest.raises(PatternError, match=re.escape(problem)):
        NamePattern(pattern)


def test_unknown_zone() -> None:
    with pytest.raises(PatternError, match="unknown time zone 'Mars/Olympus'"):
        NamePattern(DEFAULT_PATTERN, "Mars/Olympus")


def _local_archive(tmp_path: Path, utc_starts: list[int], resolve: list[str]) -> Path:
    """ffmpeg segments named in Berlin time; each says its pass by mtime or creation_time."""
    pattern = NamePattern("cam_%Y%m%d-%H%M%S.{ext}", "Europe/Berlin")
    root = tmp_path / "berlin"
    root.mkdir()
    for segment, start_us, how in zip(ffmpeg_segments(tmp_path / "ff", len(utc_starts), "mp4"),
                                      utc_starts, resolve, strict=True):
        if how == "creation_time":
            stamp = datetime.fromtimestamp(start_us / S, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            set_creation_time(segment, stamp)
        target = segment.replace(root / pattern.format(start_us, "mp4"))
        if how == "mtime":  # written when the segment ended, as a recorder does
            end_ns = (start_us + S) * 1000
            os.utime(target, ns=(end_ns, end_ns))
    return root


@pytest.mark.parametrize(("changes", "starts"), [
    # Autumn: 02:59:58, 02:59:59 CEST then 02:00:00, 02:00:01 CET (local names repeat).
    ("autumn", [utc(2026, 10, 25, 0, 59, 58), utc(2026, 10, 25, 0, 59, 59),
                utc(2026, 10, 25, 1, 0, 0), utc(2026, 10, 25, 1, 0, 1)]),
    # Spring: 01:59:58, 01:59:59 CET then 03:00:00, 03:00:01 CEST (an hour skipped).
    ("spring", [utc(2026, 3, 29, 0, 59, 58), utc(2026, 3, 29, 0, 59, 59),
                utc(2026, 3, 29, 1, 0, 0), utc(2026, 3, 29, 1, 0, 1)]),
])
def test_dst_changes_keep_one_continuous_recording(tmp_path: Path, changes: str,
                                                   starts: list[int]) -> None:
    root = _local_archive(tmp_path, starts, ["mtime", "creation_time", "mtime",
                                             "creation_time"])
    index = ArchiveIndex(tmp_path / "index.sqlite3")
    try:
        report = reconcile_device(index, DEV, root, pattern=NamePattern(
            "cam_%Y%m%d-%H%M%S.{ext}", "Europe/Berlin"))
        assert (report.added, report.bad, report.overlapping) == (4, 0, 0), changes
        segments = index.segments(DEV, starts[0] - 7200 * S, starts[0] + 7200 * S)
        assert [s.start_us for s in segments] == starts
        assert index.intervals(DEV, 0, 2**62, join_tolerance_us=0) == [(starts[0],
                                                                        starts[0] + 4 * S)]
    finally:
        index.close()


@pytest.mark.parametrize(("creation_time", "start_us"), [
    ("2026-11-20T10:00:07.400000Z", T0 + 7_400_000),  # inside the name's second: refines it
    ("2026-11-20T10:00:09.400000Z", T0 + 7 * S),  # outside: the name wins (with a warning)
])
def test_container_start_refines_a_coarse_name(tmp_path: Path, creation_time: str,
                                               start_us: int) -> None:
    (segment,) = ffmpeg_segments(tmp_path / "ff", 1, "mkv")
    set_creation_time(segment, creation_time)
    root = tmp_path / "archive"
    root.mkdir()
    segment.replace(root / "cam_20261120-100007.mkv")
    index = ArchiveIndex(tmp_path / "index.sqlite3")
    try:
        reconcile_device(index, DEV, root, pattern=NamePattern("cam_%Y%m%d-%H%M%S.{ext}"))
        (indexed,) = index.segments(DEV, 0, 2**62)
        assert (indexed.start_us, indexed.end_us) == (start_us, start_us + S)
    finally:
        index.close()
