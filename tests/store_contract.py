"""The contract every ``JobStore`` meets (``sense_plugin/export/storage.py``).

Test functions taking a ``store`` fixture: an opened, empty store. A test module provides
the fixture and imports these (``from tests.store_contract import *``), so the same contract
runs against PostgreSQL (``tests/test_pg_store.py``) and any other implementation.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from sense_plugin.errors import SenseError
from sense_plugin.export.model import Export, Job, Status
from sense_plugin.export.storage import ExportQuery, JobStore
from sense_plugin.filemodel import FileInfo, Gap
from sense_plugin.media.exportoptions import ExportOptions
from sense_plugin.media.renderoptions import Comment, Mask, Rect, RenderOptions, Timestamp

T0 = 1_795_168_800_000_000
PLAIN = ExportOptions()
#: Ids above 2**63, as the archive tests use: both columns must hold unsigned 64-bit ids.
SERVER_ID, DEVICE_ID = 9890179877273119001, 9890179877273119875
RENDER = ExportOptions(
    maxfilesize_mb=50, keepalive_s=30, timestamps="subtitle",
    render=RenderOptions(
        timestamp=Timestamp(position="top-right", color=(255, 200, 0), size=0.05,
                            fmt="%d.%m.%Y %H:%M:%S", timezone="Europe/Berlin"),
        comment=Comment(text="Case 2026/113 — Gate", color=(0, 0, 0), size=0.03),
        masks=(Mask(Rect(0.1, 0.1, 0.2, 0.2), "pixelate"), Mask(Rect(0.5, 0.5, 0.1, 0.25))),
        crop=Rect(0.0, 0.0, 0.5, 0.5), width=640, fps=12.5, codec="h265", quality="high"))


def file_info(name: str, start_us: int, gaps: int = 0, oversize: bool = False) -> FileInfo:
    return FileInfo(name=name, size_bytes=48_213_337, sha256="ab" * 32,
                    first_frame_us=start_us, last_frame_us=start_us + 59_960_000,
                    frame_count=1500, oversize=oversize,
                    gaps=tuple(Gap(start_us + k * 10_000_000, start_us + k * 10_000_000 + 2_500_000,
                                   ("no recording", "")[k % 2]) for k in range(gaps)))


def make_export(export_id: int, owner: str = "alice", *, jobs: int = 2,
                options: ExportOptions = PLAIN) -> Export:
    export = Export(export_id=export_id, owner=owner, created_us=T0 + export_id,
                    path="cases/113", out_base="/srv/exports/cases/113", fmt="mp4",
                    name=f"export {export_id}", bandwidth_limit_kbps=8000, options=options)
    export.jobs = [Job(export_id=export_id, index=i, server_id=SERVER_ID,
                       device_id=DEVICE_ID + i, device_name=f"Camera {i}",
                       start_us=T0, end_us=T0 + 60_000_000) for i in range(jobs)]
    return export


def set_status(export: Export, status: Status, at_us: int = T0 + 120_000_000) -> Export:
    """Every job of ``export`` in ``status``; finished (and due at ``at_us``) when terminal."""
    for job in export.jobs:
        job.status = status
        if status is not Status.PENDING:
            job.started_us = T0 + 1_000_000
    if status not in (Status.PENDING, Status.SYNCING):
        export.finished_us = at_us
        export.expires_us = at_us + 3_600_000_000
    assert export.status is status
    return export


async def insert(store: JobStore, owner: str = "alice", status: Status = Status.PENDING,
                 **kwargs: object) -> Export:
    export = set_status(make_export(await store.new_id(), owner, **kwargs), status)
    await store.insert(export)
    return export


async def test_insert_get_round_trip(store: JobStore) -> None:
    export = make_export(await store.new_id(), "bob", jobs=3, options=RENDER)
    export.retried_from = 7
    done, single, _waiting = export.jobs
    done.status, done.progress, done.bytes_written, done.bandwidth_kbps = (
        Status.COMPLETED, 100, 96_426_674, 51_234)
    done.started_us, done.finished_us = T0 + 1_000_000, T0 + 9_000_000
    done.parts = (file_info("Camera 0_1.mp4", T0, gaps=2),
                  file_info("Camera 0_2.mp4", T0 + 60_000_000, oversize=True))
    done.file = done.parts[0]
    single.status, single.errorcode, single.description = Status.FAILED, -1007, "disk full"
    single.file, single.stopped = file_info("Camera 1.mp4", T0, gaps=1), True
    await store.insert(export)
    assert await store.get(export.export_id) == export
    assert await store.get(export.export_id + 1000) is None
    plain = await insert(store)
    got = await store.get(plain.export_id)
    assert got == plain and got.options == ExportOptions() and got.jobs[0].file is None


async def test_insert_is_all_or_nothing(store: JobStore) -> None:
    first = await insert(store, "alice")
    twice = make_export(first.export_id, "mallory")
    with pytest.raises(SenseError):
        await store.insert(twice)  # the id is taken
    assert await store.get(first.export_id) == first
    broken = make_export(await store.new_id())
    broken.jobs.append(dataclasses.replace(broken.jobs[0]))  # the same job index twice
    with pytest.raises(SenseError):
        await store.insert(broken)
    assert await store.get(broken.export_id) is None


async def test_save_job_and_save_export(store: JobStore) -> None:
    export = await insert(store)
    first, second = export.jobs
    first.status, first.progress, first.started_us = Status.SYNCING, 40, T0 + 2_000_000
    first.bytes_written, first.bandwidth_kbps = 1_234_567, 9000
    await store.save_job(export, first)
    assert await store.get(export.export_id) == export
    assert (await store.page(ExportQuery(statuses=frozenset({Status.SYNCING}))))[1] == 1
    for job in export.jobs:
        job.status, job.progress, job.finished_us = Status.COMPLETED, 100, T0 + 30_000_000
        job.file = file_info(f"{job.device_name}.mp4", T0)
    second.end_us, second.stopped = T0 + 30_000_000, True  # stopped early: its end moves
    await store.save_job(export, first)
    await store.save_job(export, second)
    assert export.status is Status.SYNCING  # not finalised yet
    assert (await store.page(ExportQuery(statuses=frozenset({Status.COMPLETED}))))[1] == 0
    export.finished_us, export.expires_us = T0 + 31_000_000, T0 + 86_400_000_000
    await store.save_export(export)
    assert await store.get(export.export_id) == export
    page, total = await store.page(ExportQuery(statuses=frozenset({Status.COMPLETED})))
    assert total == 1 and page == [export]


async def test_page_filters_orders_and_counts(store: JobStore) -> None:
    made = []
    for n in range(25):
        status = (Status.PENDING, Status.SYNCING, Status.COMPLETED, Status.FAILED)[n % 4]
        made.append(await insert(store, "alice" if n % 5 else "bob", status))
    ids = [e.export_id for e in made]

    async def page_ids(**kwargs: object) -> tuple[list[int], int]:
        exports, total = await store.page(ExportQuery(**kwargs))
        return [e.export_id for e in exports], total

    assert await page_ids() == (ids, 25)
    assert await page_ids(newest_first=True, limit=10) == (ids[::-1][:10], 25)
    assert await page_ids(newest_first=True, offset=20, limit=10) == (ids[::-1][20:], 25)
    assert await page_ids(offset=30, limit=10) == ([], 25)
    assert await page_ids(limit=0) == ([], 25)
    bob = [e.export_id for e in made if e.owner == "bob"]
    assert await page_ids(owner="bob") == (bob, 5)
    assert await page_ids(owner="carol") == ([], 0)
    finished = frozenset({Status.COMPLETED, Status.FAILED})
    want = [e.export_id for e in made if e.status in finished]
    assert await page_ids(statuses=finished, newest_first=True, offset=2, limit=3) == (
        want[::-1][2:5], len(want))
    both = [e.export_id for e in made if e.owner == "alice" and e.status is Status.SYNCING]
    assert await page_ids(owner="alice", statuses=frozenset({Status.SYNCING})) == (
        both, len(both))
    assert await page_ids(statuses=frozenset()) == ([], 0)
    exports, _ = await store.page(ExportQuery(owner="bob", limit=1))
    assert exports == made[:1] and len(exports[0].jobs) == 2  # whole exports, with jobs


async def test_expiring_and_finished_before(store: JobStore) -> None:
    early = await insert(store, status=Status.COMPLETED)  # finished T0+120 s
    failed = set_status(make_export(await store.new_id()), Status.FAILED, at_us=T0 + 500_000_000)
    await store.insert(failed)
    removed = await insert(store, status=Status.REMOVED)
    await insert(store, status=Status.SYNCING)
    due = early.expires_us
    assert due is not None and failed.expires_us is not None
    assert [e.export_id for e in await store.expiring(due - 1)] == []
    assert await store.expiring(due) == [early]  # at the deadline: due (REMOVED never)
    assert await store.expiring(failed.expires_us) == [early, failed]
    assert await store.finished_before(T0 + 119_999_999) == []
    assert await store.finished_before(T0 + 120_000_000) == [early, removed]
    assert await store.finished_before(T0 + 500_000_000) == [early, failed, removed]


async def test_delete_forgets_and_ids_are_never_reused(store: JobStore) -> None:
    keep, gone, also = [await insert(store) for _ in range(3)]
    await store.delete([gone.export_id, also.export_id, 999_999])
    await store.delete([])
    await store.save_job(gone, gone.jobs[0])  # a late write of a purged export: nothing
    await store.save_export(gone)
    assert await store.get(gone.export_id) is None and await store.get(also.export_id) is None
    assert await store.get(keep.export_id) == keep
    assert (await store.page(ExportQuery()))[1] == 1
    assert await store.new_id() > also.export_id


async def test_count_by_status(store: JobStore) -> None:
    for status, count in ((Status.PENDING, 2), (Status.COMPLETED, 3), (Status.EXPIRED, 1)):
        for _ in range(count):
            await insert(store, status=status)
    counts, jobs = await store.count_by_status()
    assert set(counts) <= set(Status)
    assert {s: n for s, n in counts.items() if n} == {
        Status.PENDING: 2, Status.COMPLETED: 3, Status.EXPIRED: 1}
    assert {s: n for s, n in jobs.items() if n} == {
        Status.PENDING: 4, Status.COMPLETED: 6, Status.EXPIRED: 2}


async def test_directories_and_the_retry_of_an_export(store: JobStore) -> None:
    first = await insert(store, status=Status.FAILED)
    retry = make_export(await store.new_id())
    retry.retried_from = first.export_id
    await store.insert(retry)
    assert await store.directories() == {str(first.directory): first.export_id,
                                          str(retry.directory): retry.export_id}
    found, total = await store.page(ExportQuery(retried_from=first.export_id))
    assert [e.export_id for e in found] == [retry.export_id] and total == 1
    assert (await store.page(ExportQuery(retried_from=retry.export_id)))[1] == 0


async def test_unfinished_oldest_first(store: JobStore) -> None:
    waiting = await insert(store)
    await insert(store, status=Status.COMPLETED)
    running = await insert(store, status=Status.SYNCING)
    assert await store.unfinished() == [waiting, running]


async def test_new_ids_unique_and_growing_under_concurrency(store: JobStore) -> None:
    ids = await asyncio.gather(*(store.new_id() for _ in range(40)))
    assert len(set(ids)) == 40 and min(ids) > 0
    assert await store.new_id() > max(ids)


async def test_claim_finish_once_every_job_is_terminal(store: JobStore) -> None:
    """The finisher is claimed only when every job has ended and nobody finished it yet."""
    export = await insert(store)
    first, second = export.jobs
    first.status, first.finished_us = Status.COMPLETED, T0 + 5_000_000
    await store.save_job(export, first)
    assert not await store.claim_finish(export)  # the second still waits
    second.status, second.finished_us = Status.FAILED, T0 + 6_000_000
    await store.save_job(export, second)
    assert await store.claim_finish(export)
    export.finished_us, export.expires_us = T0 + 7_000_000, T0 + 86_400_000_000
    await store.save_export(export)
    assert not await store.claim_finish(export)  # finished: never claimed again


async def test_claim_finish_of_removed_jobs(store: JobStore) -> None:
    export = await insert(store, jobs=1)
    export.jobs[0].status, export.jobs[0].finished_us = Status.REMOVED, T0 + 1_000_000
    await store.save_job(export, export.jobs[0])
    assert await store.claim_finish(export)
