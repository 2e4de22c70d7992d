"""The job book's transitions, unit-tested: an in-memory store, a fake clock, no server.

Every transition of a device job and of an export (docs/exports.rst, "Export lifecycle"),
what is written to the store and when, the tallies, the finish (manifest once, retention
deadline), and the races a real store's round trip opens (two finishes at once, remove while
a completion is being written, a store that fails and is written again later).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sense_plugin.errors import StorageError
from sense_plugin.export.book import JobBook
from sense_plugin.export.model import Export, Job, Status, combine_statuses
from sense_plugin.export.outcome import Completed
from sense_plugin.export.storage import ExportQuery
from tests.store_contract import T0, file_info, make_export
from tests.unit.memstore import MemoryJobStore

RETENTION_US = 3_600_000_000


class Clock:
    """A wall clock that moves only when told (µs since the epoch)."""

    def __init__(self) -> None:
        self.now_us = T0 + 10_000_000

    def __call__(self) -> int:
        return self.now_us

    def advance(self, seconds: float) -> None:
        self.now_us += int(seconds * 1_000_000)


class Finalizer:
    """Records each manifest written (export id, final status, finish time)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, Status, int]] = []
        self.failing = 0

    async def __call__(self, export: Export, status: Status, at_us: int) -> None:
        await asyncio.sleep(0)
        if self.failing:
            self.failing -= 1
            raise StorageError("manifest could not be written (injected)")
        self.calls.append((export.export_id, status, at_us))


class Setup:
    def __init__(self, site_server: int | None = None) -> None:
        self.store = MemoryJobStore()
        self.clock = Clock()
        self.finals = Finalizer()
        self.book = JobBook(self.store, self.finals, RETENTION_US, site_server=site_server,
                            clock=self.clock)

    async def export(self, jobs: int = 2, owner: str = "alice") -> Export:
        export = make_export(await self.store.new_id(), owner, jobs=jobs)
        await self.book.add(export)
        return export

    async def stored(self, export: Export) -> Export:
        found = await self.store.get(export.export_id)
        assert found is not None
        return found


@pytest.fixture
async def s() -> Setup:
    setup = Setup()
    await setup.book.open()
    return setup


async def complete(s: Setup, job: Job, **kwargs: object) -> None:
    await s.book.start(job)
    s.clock.advance(1)
    stopped_us = kwargs.get("stopped_us")
    assert stopped_us is None or isinstance(stopped_us, int)
    await s.book.complete(job, Completed((file_info(f"{job.device_name}.mp4", job.start_us),),
                                         stopped_us, False, 8000))


# -- adding and opening ----------------------------------------------------------------------
async def test_add_stores_the_export_with_its_pending_jobs(s: Setup) -> None:
    export = await s.export()
    assert await s.stored(export) == export
    assert s.book.export_counts[Status.PENDING] == 1 and s.book.job_counts[Status.PENDING] == 2
    assert s.book.active() == [export] and s.book.directories() == {
        str(export.directory): export.export_id}


async def test_open_resumes_the_unfinished_and_counts_the_store() -> None:
    first = Setup()
    await first.book.open()
    running = await first.export()
    done = await first.export(jobs=1)
    await complete(first, done.jobs[0])
    await first.book.start(running.jobs[0])
    again = Setup()
    again.store = first.store
    again.book = JobBook(again.store, again.finals, RETENTION_US, clock=again.clock)
    assert [e.export_id for e in await again.book.open()] == [running.export_id]
    assert [e.export_id for e in again.book.active()] == [running.export_id]
    assert again.book.export_counts == first.book.export_counts
    assert +again.book.job_counts == +first.book.job_counts


async def test_close_closes_the_store(s: Setup) -> None:
    await s.book.close()
    assert s.store.closed


# -- job transitions -------------------------------------------------------------------------
async def test_start_is_syncing_from_the_clock_with_progress_reset(s: Setup) -> None:
    export = await s.export()
    job = export.jobs[0]
    job.progress = 30
    await s.book.start(job)
    assert job.status is Status.SYNCING and job.started_us == s.clock.now_us
    assert job.progress == 0 and (await s.stored(export)).jobs[0].status is Status.SYNCING
    assert export.status is Status.SYNCING


async def test_a_resumed_start_keeps_its_start_time_and_progress(s: Setup) -> None:
    export = await s.export()
    job = export.jobs[0]
    await s.book.start(job)
    started = job.started_us
    s.book.report(job, 40, 1000, 10)
    await s.book.hand_over(job)
    s.clock.advance(5)
    await s.book.start(job, resumed=True)
    assert job.started_us == started and job.progress == 40


async def test_progress_only_grows_stays_below_100_and_is_not_written(s: Setup) -> None:
    export = await s.export()
    job = export.jobs[0]
    await s.book.start(job)
    writes = len(s.store.writes)
    s.book.report(job, 50, 1_000, 800)
    s.book.report(job, 20, 2_000, 900)
    assert job.progress == 50 and job.bytes_written == 2_000 and job.bandwidth_kbps == 900
    s.book.report(job, 250, 3_000, 900)
    assert job.progress == 99
    s.book.report_rate(job, 77)
    assert job.bandwidth_kbps == 77 and len(s.store.writes) == writes


async def test_hand_over_is_pending_with_progress_kept(s: Setup) -> None:
    export = await s.export()
    job = export.jobs[0]
    await s.book.start(job)
    s.book.report(job, 60, 10, 10)
    await s.book.hand_over(job)
    assert job.status is Status.PENDING and job.progress == 60


async def test_requeue_starts_over(s: Setup) -> None:
    export = await s.export()
    job = export.jobs[0]
    await s.book.start(job)
    s.book.report(job, 60, 10_000, 10)
    job.finished_us = 5
    await s.book.requeue(job)
    assert (job.status, job.progress, job.bytes_written, job.bandwidth_kbps,
            job.finished_us) == (Status.PENDING, 0, 0, 0, None)
    assert (await s.stored(export)).jobs[0].status is Status.PENDING


async def test_one_job_completed_of_two_is_not_finished(s: Setup) -> None:
    export = await s.export()
    await complete(s, export.jobs[0])
    assert export.jobs[0].status is Status.COMPLETED and export.jobs[0].progress == 100
    assert export.status is Status.SYNCING and export.finished_us is None
    assert s.finals.calls == []


async def test_the_last_completion_writes_the_manifest_once_then_the_finish(s: Setup) -> None:
    export = await s.export()
    for job in export.jobs:
        await complete(s, job)
    assert s.finals.calls == [(export.export_id, Status.COMPLETED, s.clock.now_us)]
    assert export.finished_us == s.clock.now_us
    assert export.expires_us == s.clock.now_us + RETENTION_US
    assert export.status is Status.COMPLETED
    stored = await s.stored(export)
    assert stored.finished_us == export.finished_us and stored.status is Status.COMPLETED
    assert s.store.writes[-1][0] == "save_export"  # the jobs first, the finish last


async def test_complete_with_parts_sums_their_bytes(s: Setup) -> None:
    export = await s.export(jobs=1)
    job = export.jobs[0]
    await s.book.start(job)
    parts = (file_info("a_1.mp4", T0), file_info("a_2.mp4", T0 + 60_000_000))
    await s.book.complete(job, Completed(parts, None, True, 1))
    assert job.parts == parts and job.file == parts[0] and job.files == parts
    assert job.bytes_written == 2 * parts[0].size_bytes


async def test_a_completion_without_split_has_no_parts(s: Setup) -> None:
    export = await s.export(jobs=1)
    await complete(s, export.jobs[0])
    assert export.jobs[0].parts == () and len(export.jobs[0].files) == 1


async def test_a_stopped_completion_ends_its_range_where_it_stopped(s: Setup) -> None:
    export = await s.export(jobs=1)
    job = export.jobs[0]
    await complete(s, job, stopped_us=T0 + 7_000_000)
    assert job.stopped and job.end_us == T0 + 7_000_000
    assert (await s.stored(export)).jobs[0].end_us == T0 + 7_000_000


async def test_a_failed_device_fails_the_export_with_a_manifest(
        s: Setup, caplog: pytest.LogCaptureFixture) -> None:
    export = await s.export()
    await complete(s, export.jobs[0])
    await s.book.start(export.jobs[1])
    with caplog.at_level(logging.INFO, logger="sense_plugin.export.book"):
        await s.book.fail(export.jobs[1], -1007, "disk full")
    assert export.jobs[1].errorcode == -1007 and export.jobs[1].description == "disk full"
    assert export.status is Status.FAILED and s.finals.calls[0][1] is Status.FAILED
    assert export.expires_us is not None
    assert "errorcode -1007: disk full" in caplog.text


async def test_removing_every_job_finishes_removed_without_manifest(s: Setup) -> None:
    export = await s.export()
    for job in export.jobs:
        await s.book.remove(job)
    assert export.status is Status.REMOVED and export.finished_us is not None
    assert export.expires_us is None and s.finals.calls == []


async def test_one_removed_one_completed_is_completed(s: Setup) -> None:
    export = await s.export()
    await s.book.remove(export.jobs[0])
    await complete(s, export.jobs[1])
    assert export.status is Status.COMPLETED and s.finals.calls[0][1] is Status.COMPLETED


async def test_remove_all_removes_running_and_waiting_jobs(s: Setup) -> None:
    export = await s.export(jobs=3)
    await s.book.start(export.jobs[0])
    await s.book.remove(export.jobs[2])
    removed_at = export.jobs[2].finished_us
    s.clock.advance(3)
    await s.book.remove_all(export)
    assert [j.status for j in export.jobs] == [Status.REMOVED] * 3
    assert export.jobs[2].finished_us == removed_at  # already removed: untouched
    assert export.jobs[0].finished_us == s.clock.now_us
    assert export.finished_us == s.clock.now_us
    assert (await s.stored(export)).status is Status.REMOVED


async def test_remove_all_of_a_completed_export_keeps_its_finish(s: Setup) -> None:
    export = await s.export(jobs=1)
    await complete(s, export.jobs[0])
    finished = export.finished_us
    s.clock.advance(60)
    await s.book.remove_all(export)
    assert export.jobs[0].status is Status.REMOVED and export.finished_us == finished


# -- retention -------------------------------------------------------------------------------
async def test_expire_turns_completed_and_failed_jobs_expired(s: Setup) -> None:
    export = await s.export(jobs=3)
    await s.book.remove(export.jobs[0])
    await complete(s, export.jobs[1])
    await s.book.start(export.jobs[2])
    await s.book.fail(export.jobs[2], -18, "broken")
    await s.book.expire(export)
    assert [j.status for j in export.jobs] == [Status.REMOVED, Status.EXPIRED, Status.EXPIRED]
    assert export.status is Status.EXPIRED and (await s.stored(export)).status is Status.EXPIRED


async def test_expire_of_a_removed_export_changes_nothing(s: Setup) -> None:
    export = await s.export(jobs=1)
    await s.book.remove(export.jobs[0])
    writes = len(s.store.writes)
    await s.book.expire(export)
    assert export.status is Status.REMOVED and len(s.store.writes) == writes


async def test_purge_forgets_the_export_its_directory_and_tallies(s: Setup) -> None:
    keep = await s.export(jobs=1)
    gone = await s.export(jobs=1)
    await complete(s, gone.jobs[0])
    await s.book.purge([gone.export_id, 424242])
    assert await s.book.get(gone.export_id) is None
    assert str(gone.directory) not in s.book.directories()
    assert s.book.export_counts[Status.COMPLETED] == 0
    assert s.book.job_counts[Status.COMPLETED] == 0
    assert await s.book.get(keep.export_id) is keep


async def test_expiring_and_finished_before_come_from_the_store(s: Setup) -> None:
    export = await s.export(jobs=1)
    await complete(s, export.jobs[0])
    assert export.expires_us is not None and export.finished_us is not None
    assert await s.book.expiring(export.expires_us - 1) == []
    assert [e.export_id for e in await s.book.expiring(export.expires_us)] == [
        export.export_id]
    assert [e.export_id for e in await s.book.finished_before(export.finished_us)] == [
        export.export_id]


# -- reading ---------------------------------------------------------------------------------
async def test_get_answers_the_live_object_of_an_unfinished_export(s: Setup) -> None:
    export = await s.export()
    assert await s.book.get(export.export_id) is export
    assert await s.book.get(export.export_id + 99) is None


async def test_a_finished_export_read_from_the_store_is_cached() -> None:
    first = Setup()
    await first.book.open()
    export = await first.export(jobs=1)
    await complete(first, export.jobs[0])
    fresh = JobBook(first.store, first.finals, RETENTION_US, clock=first.clock)
    await fresh.open()
    read = await fresh.get(export.export_id)
    assert read is not None and read == export and read is not export
    assert await fresh.get(export.export_id) is read


async def test_page_shows_the_live_objects_of_unfinished_exports(s: Setup) -> None:
    export = await s.export()
    await s.book.start(export.jobs[0])
    s.book.report(export.jobs[0], 42, 1, 1)  # in memory only
    page, total = await s.book.page(ExportQuery())
    assert total == 1 and page[0] is export and page[0].jobs[0].progress == 42


async def test_pending_owners_names_the_owners_of_waiting_jobs(s: Setup) -> None:
    a = await s.export(owner="alice")
    b = await s.export(owner="bob")
    assert s.book.pending_owners([a.jobs[0].key, b.jobs[1].key, (999, 0)]) == ["alice", "bob"]


# -- the store fails -------------------------------------------------------------------------
async def test_a_refused_job_write_is_kept_and_written_again(s: Setup) -> None:
    export = await s.export(jobs=1)
    job = export.jobs[0]
    await s.book.start(job)
    s.store.fail("save_job")
    with pytest.raises(StorageError):
        await s.book.fail(job, -18, "worker died")
    assert job.status is Status.FAILED  # memory is right
    assert s.book.unsaved_jobs == {job.key: (export, job)}
    # the export still finishes: its manifest, then its finish written with every job
    assert s.finals.calls[0][1] is Status.FAILED
    assert (await s.stored(export)).jobs[0].status is Status.FAILED
    await s.book.save_unsaved()
    assert s.book.unsaved_jobs == {}
    assert (await s.stored(export)).jobs[0].status is Status.FAILED


async def test_a_refused_start_leaves_the_job_unsaved_until_the_next_write(s: Setup) -> None:
    export = await s.export(jobs=1)
    s.store.fail("save_job")
    with pytest.raises(StorageError):
        await s.book.start(export.jobs[0])
    assert export.jobs[0].key in s.book.unsaved_jobs
    await s.book.hand_over(export.jobs[0])
    assert s.book.unsaved_jobs == {}


async def test_a_manifest_that_fails_leaves_the_export_unfinished_to_try_again(s: Setup) -> None:
    export = await s.export(jobs=1)
    s.finals.failing = 1
    with pytest.raises(StorageError):
        await complete(s, export.jobs[0])
    assert export.finished_us is None and export.status is Status.SYNCING
    await s.book.finish_if_done(export)  # the guard was released: it can finish now
    assert export.finished_us is not None and len(s.finals.calls) == 1


async def test_a_refused_finish_write_on_a_site_is_retried_by_save_unsaved() -> None:
    s = Setup(site_server=7)
    await s.book.open()
    export = make_export(await s.store.new_id(), jobs=1)
    for job in export.jobs:
        job.server_id = 7
    await s.store.insert(export)
    live = s.book.adopt(export)
    await s.book.start(live.jobs[0])
    s.store.fail("save_export")
    with pytest.raises(StorageError):
        await s.book.complete(live.jobs[0], Completed((file_info("a.mp4", T0),), None, False, 1))
    assert live.finished_us is None and export.export_id in s.book.unsaved_finish
    await s.book.save_unsaved()
    assert s.book.unsaved_finish == {}
    assert (await s.stored(export)).finished_us is not None


# -- races -----------------------------------------------------------------------------------
async def test_two_completions_at_once_write_one_manifest(s: Setup) -> None:
    export = await s.export()
    for job in export.jobs:
        await s.book.start(job)
    await asyncio.gather(*(s.book.complete(
        j, Completed((file_info(f"{j.index}.mp4", T0),), None, False, 1)) for j in export.jobs))
    assert len(s.finals.calls) == 1 and export.status is Status.COMPLETED


async def test_finish_if_done_twice_at_once_finishes_once(s: Setup) -> None:
    export = await s.export(jobs=1)
    await complete(s, export.jobs[0])
    s.finals.calls.clear()
    export.finished_us = None
    await asyncio.gather(s.book.finish_if_done(export), s.book.finish_if_done(export))
    assert len(s.finals.calls) == 1


async def test_remove_while_a_completion_is_being_written_ends_removed(s: Setup) -> None:
    export = await s.export(jobs=1)
    job = export.jobs[0]
    await s.book.start(job)
    await asyncio.gather(
        s.book.complete(job, Completed((file_info("a.mp4", T0),), None, False, 1)),
        s.book.remove_all(export))
    assert job.status is Status.REMOVED and export.status is Status.REMOVED
    assert (await s.stored(export)).status is Status.REMOVED
    assert all(status is not Status.COMPLETED for _, status, _ in s.finals.calls)


async def test_a_store_that_will_not_let_this_server_finish_writes_no_manifest(s: Setup) -> None:
    async def never(export: Export) -> bool:
        return False

    s.store.claim_finish = never  # type: ignore[method-assign]
    export = await s.export(jobs=1)
    await complete(s, export.jobs[0])
    assert s.finals.calls == [] and export.finished_us is None


# -- a site ----------------------------------------------------------------------------------
async def test_a_site_holds_only_the_jobs_it_runs_and_retires_them() -> None:
    s = Setup(site_server=7)
    await s.book.open()
    export = make_export(await s.store.new_id(), jobs=2)
    export.jobs[1].server_id = 8  # another server's job
    export.jobs[0].server_id = 7
    await s.book.add(export)
    assert s.book.active() == []  # on a site jobs arrive through the queue
    live = s.book.adopt(await s.stored(export))
    assert s.book.adopt(await s.stored(export)) is live
    await complete(s, live.jobs[0])
    assert s.book.active() == []  # retired: this server's jobs have ended
    assert export.export_id in s.book.awaiting_finish  # the other server's job still runs
    assert s.finals.calls == []


# -- tallies and versions --------------------------------------------------------------------
async def test_every_write_bumps_the_version(s: Setup) -> None:
    versions = [s.book.version]
    export = await s.export(jobs=1)
    versions.append(s.book.version)
    await s.book.start(export.jobs[0])
    versions.append(s.book.version)
    await s.book.complete(export.jobs[0], Completed((file_info("a.mp4", T0),), None, False, 1))
    versions.append(s.book.version)
    assert versions == sorted(set(versions))


OPS = st.lists(st.tuples(st.sampled_from(["add", "start", "complete", "fail", "remove",
                                          "remove_all", "requeue", "expire", "purge"]),
                         st.integers(0, 5), st.integers(0, 2)), max_size=40)


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_the_tallies_always_equal_the_store(ops: list[tuple[str, int, int]]) -> None:
    """Whatever the order of transitions, /metrics' tallies equal what the store holds."""

    async def run() -> None:
        s = Setup()
        await s.book.open()
        exports: list[Export] = []
        for op, which, index in ops:
            if op == "add" or not exports:
                exports.append(await s.export(jobs=3))
                continue
            export = exports[which % len(exports)]
            job = export.jobs[index]
            await apply(s, op, export, job)
        stored_exports, stored_jobs = await s.store.count_by_status()
        assert +s.book.export_counts == +Counter(stored_exports)
        assert +s.book.job_counts == +Counter(stored_jobs)

    asyncio.run(run())


async def apply(s: Setup, op: str, export: Export, job: Job) -> None:
    """One transition, only where the engine would make it."""
    gone = await s.store.get(export.export_id) is None
    if gone:
        return
    if op == "start" and job.status is Status.PENDING:
        await s.book.start(job)
    elif op in ("complete", "fail", "requeue") and job.status is Status.SYNCING:
        if op == "complete":
            await s.book.complete(job, Completed((file_info("x.mp4", T0),), None, False, 1))
        elif op == "fail":
            await s.book.fail(job, -18, "x")
        else:
            await s.book.requeue(job)
    elif op == "remove" and job.status is Status.PENDING:
        await s.book.remove(job)
    elif op == "remove_all" and export.status is not Status.EXPIRED:
        await s.book.remove_all(export)
    elif op == "expire" and export.finished_us is not None:
        await s.book.expire(export)
    elif op == "purge" and export.finished_us is not None:
        await s.book.purge([export.export_id])


# -- how statuses combine --------------------------------------------------------------------
@pytest.mark.parametrize(("statuses", "combined"), [
    ([], Status.PENDING),
    ([Status.PENDING, Status.PENDING], Status.PENDING),
    ([Status.PENDING, Status.SYNCING], Status.SYNCING),
    ([Status.PENDING, Status.COMPLETED], Status.SYNCING),
    ([Status.REMOVED, Status.REMOVED], Status.REMOVED),
    ([Status.REMOVED, Status.COMPLETED], Status.COMPLETED),
    ([Status.FAILED, Status.COMPLETED], Status.FAILED),
    ([Status.EXPIRED, Status.COMPLETED], Status.EXPIRED),
    ([Status.FAILED, Status.EXPIRED], Status.FAILED),
    ([Status.SYNCING, Status.FAILED], Status.SYNCING),
])
def test_statuses_combine(statuses: list[Status], combined: Status) -> None:
    assert combine_statuses(statuses) is combined


def test_a_finished_status_waits_for_the_manifest() -> None:
    export = make_export(1, jobs=1)
    export.jobs[0].status = Status.COMPLETED
    assert export.status is Status.SYNCING  # not finalised: still syncing
    export.finished_us = T0
    assert export.status is Status.COMPLETED
