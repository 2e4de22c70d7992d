"""The SQLite segment index: overlap queries, order, intervals and gaps, u64 ids, durability."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sense_plugin.archive.index import ArchiveIndex, Segment

DEV = 9890179877273119875  # above 2**63
MAX_DEV = 2**64 - 1
T0 = 1_795_168_800_000_000
S = 1_000_000


def seg(start_s: float, end_s: float, device: int = DEV, name: str | None = None,
        size: int = 1000) -> Segment:
    path = Path(f"/archive/{device}/{name or f'{start_s}-{end_s}'}.mp4")
    return Segment(device, T0 + int(start_s * S), T0 + int(end_s * S), path, size)


@pytest.fixture
def index(tmp_path: Path) -> Iterator[ArchiveIndex]:
    idx = ArchiveIndex(tmp_path / "archive.sqlite3")
    yield idx
    idx.close()


def test_overlapping_segments_in_time_order(index: ArchiveIndex) -> None:
    for start in (20, 0, 10, 40):  # inserted out of order; 30..40 is a gap
        index.add(seg(start, start + 10))
    found = index.segments(DEV, T0 + 5 * S, T0 + 25 * S)
    assert [(s.start_us - T0) // S for s in found] == [0, 10, 20]
    # Half-open: a segment ending exactly at the range start, or starting at its end, is out.
    assert [(s.start_us - T0) // S for s in index.segments(DEV, T0 + 10 * S, T0 + 20 * S)] == [10]
    assert index.segments(DEV, T0 + 31 * S, T0 + 39 * S) == []


def test_long_segment_found_from_inside(index: ArchiveIndex) -> None:
    index.add(seg(0, 3600, name="hour"))
    index.add(seg(3600, 3610))
    found = index.segments(DEV, T0 + 1800 * S, T0 + 1801 * S)
    assert [s.path.name for s in found] == ["hour.mp4"]


def test_u64_device_ids_are_kept_apart(index: ArchiveIndex) -> None:
    index.add(seg(0, 10, device=DEV))
    index.add(seg(0, 20, device=MAX_DEV))
    index.add(seg(0, 30, device=1))
    assert index.segments(MAX_DEV, T0, T0 + 100 * S)[0].device_id == MAX_DEV
    assert index.recorded_range(DEV) == (T0, T0 + 10 * S)
    assert index.recorded_range(MAX_DEV) == (T0, T0 + 20 * S)
    assert index.recorded_range(1) == (T0, T0 + 30 * S)
    assert index.recorded_range(DEV + 1) is None


def test_intervals_merge_and_show_gaps(index: ArchiveIndex) -> None:
    for start, end in [(0, 10), (10, 20), (20.5, 30), (40, 50), (45, 48), (60, 70)]:
        index.add(seg(start, end))
    got = index.intervals(DEV, T0 + 5 * S, T0 + 65 * S)
    # 20 → 20.5 is within the default 1 s tolerance; 30 → 40 and 50 → 60 are gaps.
    assert got == [(T0 + 5 * S, T0 + 30 * S), (T0 + 40 * S, T0 + 50 * S),
                   (T0 + 60 * S, T0 + 65 * S)]
    strict = index.intervals(DEV, T0, T0 + 30 * S, join_tolerance_us=0)
    assert strict == [(T0, T0 + 20 * S), (T0 + 20_500_000, T0 + 30 * S)]
    assert index.intervals(DEV, T0 + 31 * S, T0 + 39 * S) == []


def test_remove_and_device_bytes(index: ArchiveIndex) -> None:
    a, b = seg(0, 10, size=100), seg(10, 20, size=250)
    index.add(a)
    index.add(b)
    assert index.device_bytes(DEV) == 350
    index.remove(a.path)
    index.remove(a.path)  # idempotent
    assert index.device_bytes(DEV) == 250
    assert index.recorded_range(DEV) == (T0 + 10 * S, T0 + 20 * S)
    assert index.device_bytes(MAX_DEV) == 0


def test_re_adding_a_path_replaces_it(index: ArchiveIndex) -> None:
    index.add(seg(0, 10, name="x"))
    index.add(seg(0, 4, name="x"))
    assert index.recorded_range(DEV) == (T0, T0 + 4 * S)
    assert index.count(DEV) == 1


def test_marked_files_are_not_served(index: ArchiveIndex) -> None:
    index.mark(DEV, Path("/archive/bad.mp4"), size_bytes=0, mtime_ns=5, state="bad")
    assert index.recorded_range(DEV) is None
    assert index.files(DEV)[Path("/archive/bad.mp4")].state == "bad"


def test_survives_reopen(tmp_path: Path) -> None:
    db = tmp_path / "archive.sqlite3"
    first = ArchiveIndex(db)
    assert first.created
    first.add(seg(0, 10))
    first.close()
    again = ArchiveIndex(db)
    try:
        assert not again.created
        assert again.recorded_range(DEV) == (T0, T0 + 10 * S)
    finally:
        again.close()


def test_many_segments_use_the_index(index: ArchiveIndex) -> None:
    minute = 60
    index.add_many([(seg(i * minute, (i + 1) * minute, name=str(i)), 0) for i in range(30_000)])
    found = index.segments(DEV, T0 + 20_000 * minute * S + 1, T0 + 20_002 * minute * S)
    assert [s.path.name for s in found] == ["20000.mp4", "20001.mp4"]
    plan = index._query(
        "EXPLAIN QUERY PLAN SELECT start_us FROM segments WHERE device_id = ?1"
        " AND state = 'complete' AND start_us >= ?2 - (SELECT COALESCE(MAX(max_duration_us), 0)"
        " FROM device_stats WHERE device_id = ?1) AND start_us < ?3 AND end_us > ?2",
        (str(DEV), 0, 1),
    )
    # a search of a range of the table's key, never a scan of the device's rows
    assert any("SEARCH segments USING PRIMARY KEY" in str(row) and "start_us>?" in str(row)
               and "start_us<?" in str(row) for row in plan)


def test_concurrent_threads(index: ArchiveIndex) -> None:
    def writer(k: int) -> None:
        for i in range(50):
            index.add(seg(k * 1000 + i, k * 1000 + i + 1, name=f"{k}-{i}"))
            index.segments(DEV, T0, T0 + 10_000 * S)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert index.count(DEV) == 200


#: The segment table as indexes of schema 2 (and before) have it on disk: keyed by path.
_SCHEMA_2 = """
CREATE TABLE segments (
    path TEXT PRIMARY KEY, device_id TEXT NOT NULL, start_us INTEGER NOT NULL,
    end_us INTEGER NOT NULL, size_bytes INTEGER NOT NULL, mtime_ns INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'complete', reason TEXT NOT NULL DEFAULT '');
CREATE INDEX segments_by_start ON segments (device_id, state, start_us);
CREATE INDEX segments_by_end ON segments (device_id, state, end_us);
CREATE TABLE device_stats (device_id TEXT PRIMARY KEY, max_duration_us INTEGER NOT NULL);
PRAGMA user_version=2;
"""


def _indexed_columns(db: Path) -> set[str]:
    """Every column that an index of the segment table holds besides the table's own rows
    (the key's index of a rowid table included; a WITHOUT ROWID table is its key's b-tree)."""
    conn = sqlite3.connect(db)
    try:
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'segments'").fetchone()[0]
        clustered = "WITHOUT ROWID" in sql.upper()
        names = [row[1] for row in conn.execute("PRAGMA index_list(segments)")
                 if not (clustered and row[3] == "pk")]
        return {str(col[2]) for name in names
                for col in conn.execute(f"PRAGMA index_xinfo('{name}')") if col[2]}
    finally:
        conn.close()


def test_paths_are_stored_once(tmp_path: Path) -> None:
    db = tmp_path / "archive.sqlite3"
    ArchiveIndex(db).close()
    assert "path" not in _indexed_columns(db)


def test_an_index_of_the_earlier_schema_is_rewritten_with_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "archive.sqlite3"
    conn = sqlite3.connect(db)
    conn.executescript(_SCHEMA_2)
    rows = [(str(seg(i * 10, i * 10 + 10).path), str(DEV), T0 + i * 10 * S, T0 + (i + 1) * 10 * S,
             1000 + i, 7, "complete", "") for i in range(5)]
    rows.append(("/archive/x/bad.mp4", str(DEV), 0, 0, 3, 9, "bad", "cannot be decoded"))
    conn.executemany("INSERT INTO segments VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.execute("INSERT INTO device_stats VALUES (?, ?)", (str(DEV), 10 * S))
    conn.commit()
    conn.close()
    assert "path" in _indexed_columns(db)  # the key's own index held every path again

    index = ArchiveIndex(db)
    try:
        assert [s.start_us for s in index.segments(DEV, T0, T0 + 50 * S)] == \
            [T0 + i * 10 * S for i in range(5)]
        assert index.recorded_range(DEV) == (T0, T0 + 50 * S)
        assert index.device_bytes(DEV) == sum(1000 + i for i in range(5))
        assert index.skipped(DEV) == (1, [(Path("/archive/x/bad.mp4"), "cannot be decoded")])
        first = seg(0, 10).path
        assert index.file_stats(DEV, [first, Path("/nope.mp4")]) == {str(first): (1000, 7)}
        index.remove(first)
        assert index.count(DEV) == 4
        index.add(seg(0, 10))  # re-indexed by its path: one row, not two
        index.add(seg(0, 10))
        assert index.count(DEV) == 5
    finally:
        index.close()
    assert "path" not in _indexed_columns(db)
