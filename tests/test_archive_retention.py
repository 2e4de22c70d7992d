"""Archive retention by age and by bytes; pinned ranges are never deleted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sense_plugin.archive.index import ArchiveIndex, Segment
from sense_plugin.archive.retention import PinRegistry, apply_retention

DEV = 9890179877273119875
OTHER = 9890179877273119876
DAY = 86_400_000_000
NOW = 1_795_168_800_000_000


@pytest.fixture
def index(tmp_path: Path) -> Iterator[ArchiveIndex]:
    idx = ArchiveIndex(tmp_path / "archive.sqlite3")
    yield idx
    idx.close()


def add_days(index: ArchiveIndex, directory: Path, ages_days: list[float],
             device: int = DEV, size: int = 100) -> list[Path]:
    """One real file of ``size`` bytes per segment, each one hour long, ending ``age`` days ago."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for age in ages_days:
        end_us = NOW - int(age * DAY)
        path = directory / f"{device}-{end_us}.mp4"
        path.write_bytes(b"x" * size)
        index.add(Segment(device, end_us - 3_600_000_000, end_us, path, size))
        paths.append(path)
    return paths


def remaining(index: ArchiveIndex, device: int = DEV) -> int:
    return index.count(device)


def test_age_limit(index: ArchiveIndex, tmp_path: Path) -> None:
    old_a, old_b, fresh = add_days(index, tmp_path, [40, 31, 2])
    other = add_days(index, tmp_path, [50], device=OTHER)
    deleted = apply_retention(index, PinRegistry(), DEV, max_age_days=30, max_bytes=0,
                              now_us=NOW)
    assert deleted == 2
    assert not old_a.exists() and not old_b.exists() and fresh.exists()
    assert index.recorded_range(DEV) == (NOW - 2 * DAY - 3_600_000_000, NOW - 2 * DAY)
    assert other[0].exists() and remaining(index, OTHER) == 1  # per device


def test_byte_limit_deletes_oldest_first(index: ArchiveIndex, tmp_path: Path) -> None:
    paths = add_days(index, tmp_path, [5, 4, 3, 2, 1])
    deleted = apply_retention(index, PinRegistry(), DEV, max_age_days=0, max_bytes=250,
                              now_us=NOW)
    assert deleted == 3
    assert [p.exists() for p in paths] == [False, False, False, True, True]
    assert index.device_bytes(DEV) == 200


def test_unlimited(index: ArchiveIndex, tmp_path: Path) -> None:
    add_days(index, tmp_path, [4000, 1])
    assert apply_retention(index, PinRegistry(), DEV, max_age_days=0, max_bytes=0,
                           now_us=NOW) == 0


def test_pin_protects_an_expired_segment(index: ArchiveIndex, tmp_path: Path) -> None:
    pinned, expired, fresh = add_days(index, tmp_path, [40, 35, 1])
    pins = PinRegistry()
    token = pins.pin(DEV, NOW - 40 * DAY - 60_000_000, NOW - 40 * DAY - 30_000_000)
    pins.pin(OTHER, 0, NOW)  # another device's pin protects nothing here
    assert apply_retention(index, pins, DEV, max_age_days=30, max_bytes=0, now_us=NOW) == 1
    assert pinned.exists() and not expired.exists() and fresh.exists()
    pins.unpin(token)
    pins.unpin(token)  # idempotent
    assert apply_retention(index, pins, DEV, max_age_days=30, max_bytes=0, now_us=NOW) == 1
    assert not pinned.exists()


def test_byte_limit_waits_for_a_pinned_oldest_segment(index: ArchiveIndex,
                                                      tmp_path: Path) -> None:
    paths = add_days(index, tmp_path, [3, 2, 1])
    pins = PinRegistry()
    token = pins.pin(DEV, NOW - 3 * DAY - 1, NOW - 3 * DAY)  # touches the oldest's last µs
    assert apply_retention(index, pins, DEV, max_age_days=0, max_bytes=100, now_us=NOW) == 0
    assert all(p.exists() for p in paths)
    pins.unpin(token)
    assert apply_retention(index, pins, DEV, max_age_days=0, max_bytes=100, now_us=NOW) == 2
    assert [p.exists() for p in paths] == [False, False, True]


def test_file_already_gone(index: ArchiveIndex, tmp_path: Path) -> None:
    (gone,) = add_days(index, tmp_path, [60])
    gone.unlink()
    assert apply_retention(index, PinRegistry(), DEV, max_age_days=30, max_bytes=0,
                           now_us=NOW) == 1
    assert remaining(index) == 0


def test_many_segments_in_batches(index: ArchiveIndex, tmp_path: Path) -> None:
    add_days(index, tmp_path, [40 + i / 100 for i in range(1200)] + [1], size=1)
    assert apply_retention(index, PinRegistry(), DEV, max_age_days=30, max_bytes=0,
                           now_us=NOW) == 1200
    assert remaining(index) == 1
