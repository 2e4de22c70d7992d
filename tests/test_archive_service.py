"""The async archive facade: start/close, demo archive, live recording, reconcile, retention."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sense_plugin.archive.demo_archive import DemoSpec
from sense_plugin.archive.index import ArchiveIndex, index_path
from sense_plugin.archive.service import Archive, build_demo_archive
from sense_plugin.errors import GeneralError, NoDeviceError
from sense_plugin.timestamps import now_us

WriteSegment = Callable[..., Path]
MakeConfig = Callable[..., Any]
S = 1_000_000
TINY_DEMO = DemoSpec(minutes=0.5, width=64, height=64, fps=10, bitrate_bps=50_000,
                     segment_s=10.0, gop_s=1.0)
IDS = (9890179877273119875, 9890179877273119876, 9890179877273119877)


@pytest.fixture
def executor() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    pool = concurrent.futures.ThreadPoolExecutor(4)
    yield pool
    pool.shutdown(wait=True)


@pytest.fixture
async def open_archive(executor: concurrent.futures.Executor
                       ) -> AsyncIterator[Callable[..., Any]]:
    opened: list[Archive] = []

    async def start(config: Any, **options: Any) -> Archive:
        archive = Archive(config, executor, **options)
        await archive.start()
        opened.append(archive)
        return archive

    yield start
    for archive in opened:
        await archive.close()


async def max_loop_lag_s(until: asyncio.Event) -> float:
    """Worst delay of a 10 ms ticker while ``until`` is not set."""
    worst = 0.0
    while not until.is_set():
        began = time.monotonic()
        await asyncio.sleep(0.01)
        worst = max(worst, time.monotonic() - began - 0.01)
    return worst


async def test_demo_archive_on_first_start(archive_config: MakeConfig,
                                           open_archive: Callable[..., Any]) -> None:
    config = archive_config(devices=[{"name": "Entrance"}, {"name": "Parking"},
                                     {"name": "Lobby"}], demo=True)
    began, began_us = time.monotonic(), now_us()
    archive = await open_archive(config, demo_spec=TINY_DEMO)
    assert not archive.demo_ready.is_set()  # generating in the background
    lag_s = await max_loop_lag_s(archive.demo_ready)
    print(f"tiny demo ({len(IDS)} x 30 s at 64x64) in {time.monotonic() - began:.2f} s, "
          f"worst event-loop lag {lag_s * 1000:.0f} ms")
    assert lag_s < 1.0
    for device_id in IDS:
        first, last = await archive.recorded_range(device_id)
        assert last - first == 30 * S and began_us <= last <= now_us()  # ends at "now"
        assert await archive.intervals(device_id, first - S, last + S) == [(first, last)]
        assert len(await archive.segments(device_id, first, last)) == 3
        assert archive.device_status(device_id) == "idle"


async def test_restart_keeps_the_archive_and_rebuilds_a_lost_index(
        archive_config: MakeConfig, open_archive: Callable[..., Any]) -> None:
    config = archive_config(devices=[{"name": "Entrance"}], demo=True)
    first = await open_archive(config, demo_spec=TINY_DEMO)
    await first.demo_ready.wait()
    expected = await first.recorded_range(IDS[0])
    await first.close()
    again = await open_archive(config, demo_spec=TINY_DEMO)
    assert again.demo_ready.is_set()  # not empty: no second demo
    assert await again.recorded_range(IDS[0]) == expected
    await again.close()
    index_path(config).unlink()
    rebuilt = await open_archive(config, demo_spec=TINY_DEMO)
    assert rebuilt.demo_ready.is_set()
    assert await rebuilt.recorded_range(IDS[0]) == expected


async def test_corrupt_index_is_moved_aside(archive_config: MakeConfig,
                                            open_archive: Callable[..., Any],
                                            write_segment: WriteSegment) -> None:
    config = archive_config()
    start_us = now_us() - 60 * S
    write_segment(config.devices[0].archive_dir, start_us, duration_s=1.0)
    db = index_path(config)
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    archive = await open_archive(config)
    assert await archive.recorded_range(IDS[0]) == (start_us, start_us + S)
    assert list(db.parent.glob("archive.sqlite3.corrupt-*"))


async def test_segment_deleted_while_running(archive_config: MakeConfig,
                                             open_archive: Callable[..., Any],
                                             write_segment: WriteSegment) -> None:
    config = archive_config()
    directory = config.devices[0].archive_dir
    start_us = now_us() - 60 * S
    paths = [write_segment(directory, start_us + i * 3 * S, duration_s=3.0) for i in range(3)]
    archive = await open_archive(config, reconcile_interval_s=0.1)
    assert len(await archive.segments(IDS[0], start_us, start_us + 9 * S)) == 3
    paths[1].unlink()
    deadline = time.monotonic() + 5
    while len(await archive.segments(IDS[0], start_us, start_us + 9 * S)) != 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert await archive.intervals(IDS[0], start_us, start_us + 9 * S) == [
        (start_us, start_us + 3 * S), (start_us + 6 * S, start_us + 9 * S)]


async def test_live_source_statuses_and_new_segments(archive_config: MakeConfig,
                                                     open_archive: Callable[..., Any],
                                                     write_segment: WriteSegment,
                                                     tmp_path: Path) -> None:
    clip = write_segment(tmp_path / "src", 1_795_168_800_000_000, duration_s=10.0)
    config = archive_config(devices=[{"name": "Live", "source": str(clip)},
                                     {"name": "Stored"},
                                     {"name": "Off", "enabled": False, "source": str(clip)}],
                            segment_seconds=1, demo=True)
    archive = await open_archive(config, demo_spec=TINY_DEMO)
    began_us = now_us()
    deadline = time.monotonic() + 10
    while len(await archive.segments(IDS[0], began_us - S, began_us + 60 * S)) < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    print(f"two live 1 s segments indexed {(now_us() - began_us) / S:.2f} s after start")
    assert archive.device_status(IDS[0]) == "recording"
    assert archive.device_status(IDS[1]) == "idle"
    assert archive.device_status(IDS[2]) == "disabled"
    with pytest.raises(NoDeviceError):
        archive.device_status(12345)
    await archive.demo_ready.wait()
    assert await archive.recorded_range(IDS[1]) is not None  # demo for the stored device only
    assert await archive.recorded_range(IDS[2]) is None
    began = time.monotonic()
    await archive.close()
    print(f"closed with a running recorder in {time.monotonic() - began:.3f} s")
    assert not list(config.devices[0].archive_dir.glob(".*.part"))


async def test_retention_keeps_pinned_segments(archive_config: MakeConfig,
                                               open_archive: Callable[..., Any],
                                               write_segment: WriteSegment,
                                               executor: concurrent.futures.Executor) -> None:
    config = archive_config(max_age_days=30)
    directory = config.devices[0].archive_dir
    old_us = now_us() - 40 * 86_400 * S
    old = [write_segment(directory, old_us + i * S, duration_s=1.0) for i in range(3)]
    fresh = write_segment(directory, now_us() - 10 * S, duration_s=1.0)
    archive = Archive(config, executor, retention_interval_s=0.05)
    token = archive.pin(IDS[0], old_us + S + 500_000, old_us + S + 600_000)
    await archive.start()
    try:
        deadline = time.monotonic() + 5
        while old[0].exists() or old[2].exists():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert old[1].exists() and fresh.exists()
        archive.unpin(token)
        while old[1].exists():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert len(await archive.segments(IDS[0], 0, now_us())) == 1
    finally:
        await archive.close()


async def test_queries_after_close_are_general_errors(archive_config: MakeConfig,
                                                      executor: concurrent.futures.Executor
                                                      ) -> None:
    archive = Archive(archive_config(), executor)
    await archive.start()
    await archive.close()
    with pytest.raises(GeneralError):
        await archive.segments(IDS[0], 0, 1)


def test_build_demo_archive_for_the_cli(archive_config: MakeConfig) -> None:
    config = archive_config(devices=[{"name": "A"}, {"name": "B"}, {"name": "C"}])
    end_us = 1_795_168_800_000_000
    build_demo_archive(config, devices=2, minutes=0.25, width=64, height=64, fps=10,
                       bitrate_bps=50_000, segment_s=5, gop_s=1, end_us=end_us)
    index = ArchiveIndex(index_path(config))
    try:
        assert index.recorded_range(IDS[0]) == (end_us - 15 * S, end_us)
        assert index.count(IDS[1]) == 3
        assert index.recorded_range(IDS[2]) is None
    finally:
        index.close()
    build_demo_archive(config, devices=1, minutes=0.1, width=64, height=64, fps=10,
                       bitrate_bps=50_000, segment_s=5, gop_s=1, end_us=end_us)
    # The device's demo archive was replaced, not stacked.
    assert len(list(config.devices[0].archive_dir.iterdir())) == 2
    index = ArchiveIndex(index_path(config))
    try:
        assert index.intervals(IDS[0], 0, end_us, join_tolerance_us=0) == [
            (end_us - 6 * S, end_us)]
        assert index.count(IDS[1]) == 3  # untouched
    finally:
        index.close()
    with pytest.raises(ValueError, match="only 3 devices"):
        build_demo_archive(config, devices=4, minutes=0.1, width=64, height=64, fps=10,
                           bitrate_bps=50_000, segment_s=5, gop_s=1)
