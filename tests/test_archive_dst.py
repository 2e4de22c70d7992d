"""An autumn-DST archive named in local time, copied without its mtimes: each name in the
repeated hour goes to the pass whose run it continues, and one that nothing settles is taken
as the first pass with a WARNING and listed by archive-check. Judged by the frame numbers
burned into the footage (seconds since the first segment began)."""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import av
import framecode
import pytest

from sense_plugin.archive.check import check_archive
from sense_plugin.archive.index import ArchiveIndex, index_path
from sense_plugin.archive.scan import reconcile_device
from sense_plugin.config import config_from_dict
from sense_plugin.naming import NamePattern
from sense_plugin.timestamps import datetime_to_us

DEV = 9890179877273119875
S = 1_000_000
PATTERN = "cam_%Y%m%d-%H%M%S.{ext}"
ZONE = "Europe/Berlin"
T_START = datetime_to_us(datetime(2026, 10, 24, 23, 40, tzinfo=UTC))  # 01:40 CEST
SEGMENT_S = 600
#: Two segments before the repeated hour, six in each pass (the second pass one second
#: late: its writer restarted), two after; in seconds after T_START.
OFFSETS_S = ([k * SEGMENT_S for k in range(8)]
             + [3 * 3600 - 2 * 3600 + 1200 + 1 + j * SEGMENT_S for j in range(8)])


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """One ten-minute segment (1 fps, numbered by second) per offset."""
    folder = tmp_path_factory.mktemp("dst-footage")
    clips = {}
    for offset_s in OFFSETS_S:
        clips[offset_s] = folder / f"{offset_s}.mp4"
        framecode.write_clip(clips[offset_s], SEGMENT_S, 192, 32, first=offset_s, fps=1,
                             gop_frames=60)
    return clips


def copied_archive(tmp_path: Path, footage: dict[int, Path], leave_out: set[int]) -> Path:
    """The archive as ``cp`` leaves it: local-time names, every mtime the time of the copy
    (a minute ago: archive-check leaves files changed in the last seconds to settle)."""
    copied_s = time.time() - 60
    pattern = NamePattern(PATTERN, ZONE)
    root = tmp_path / "copied"
    root.mkdir()
    for offset_s, clip in footage.items():
        if offset_s not in leave_out:
            target = root / pattern.format(T_START + offset_s * S, "mp4")
            target.write_bytes(clip.read_bytes())
            os.utime(target, (copied_s, copied_s))
    return root


def first_number(path: Path) -> int:
    with av.open(str(path)) as container:
        return framecode.read_number(next(container.decode(video=0)))


def test_offsets_span_the_repeated_hour() -> None:
    names = [NamePattern(PATTERN, ZONE).format(T_START + o * S, "mp4") for o in OFFSETS_S]
    assert names[2] == "cam_20261025-020000.mp4" and names[8] == "cam_20261025-020001.mp4"
    assert len(set(names)) == len(names)


def test_copied_archive_keeps_each_pass_in_its_run(tmp_path: Path, footage: dict[int, Path],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    root = copied_archive(tmp_path, footage, set())
    index = ArchiveIndex(tmp_path / "index.sqlite3")
    try:
        report = reconcile_device(index, DEV, root, pattern=NamePattern(PATTERN, ZONE))
        assert (report.added, report.bad, report.overlapping) == (16, 0, 0)
        segments = index.segments(DEV, 0, 2**62)
        # every segment at the time its first frame was captured: nothing interleaved
        assert [(s.start_us - T_START) // S for s in segments] == \
            [first_number(s.path) for s in segments]
        assert index.intervals(DEV, 0, 2**62, join_tolerance_us=2 * S) == \
            [(T_START, T_START + (OFFSETS_S[-1] + SEGMENT_S) * S)]
    finally:
        index.close()
    assert "repeated hour" not in caplog.text


def test_a_segment_nothing_settles_is_first_pass_with_a_warning(
        tmp_path: Path, footage: dict[int, Path], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    alone = 4 * SEGMENT_S  # 02:20 CEST, its first-pass neighbours lost
    root = copied_archive(tmp_path, footage, {alone - SEGMENT_S, alone + SEGMENT_S})
    config = config_from_dict({
        "server": {"serverid": "7015498111931795223", "data_dir": "data"},
        "archive": {"demo": False},
        "devices": [{"deviceid": str(DEV), "name": "Copied", "archive_dir": str(root),
                     "archive_pattern": PATTERN, "archive_timezone": ZONE}]}, base_dir=tmp_path)
    (check,) = check_archive(config, DEV)
    name = NamePattern(PATTERN, ZONE).format(T_START + alone * S, "mp4")
    assert check.ambiguous == [root / name]
    assert f"  AMBIGUOUS {root / name}: in the repeated hour" in "\n".join(check.lines())
    warnings = [r for r in caplog.records if "repeated hour" in r.getMessage()]
    assert len(warnings) == 1 and name in warnings[0].getMessage()
    index = ArchiveIndex(index_path(config))
    try:
        segments = index.segments(DEV, 0, 2**62)
        assert len(segments) == 14
        assert [(s.start_us - T_START) // S for s in segments] == \
            [first_number(s.path) for s in segments]
    finally:
        index.close()
