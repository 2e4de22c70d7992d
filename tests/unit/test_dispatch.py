"""The run of a device job, unit-tested: a real dispatcher, runner and book on fake workers.

Each test drives one :class:`~sense_plugin.export.jobrun.JobRun` (or a few) through the
dispatcher with a scripted :class:`~tests.unit.fakeworker.FakeWorker`: a job queued, given a
worker, cut and recorded once, and the races between that and what is asked of it (stop,
remove, shutdown), the worker's own failures (an error, a death, a stall) and a failing
store (docs/scheduling.rst, "One object per running job").
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sense_plugin.errors import ResultCode
from sense_plugin.export import files
from sense_plugin.export.jobrun import Ask
from sense_plugin.export.model import Status
from sense_plugin.export.outcome import Completed, Interrupted, JobFailed, Removed
from sense_plugin.media.exportoptions import ExportOptions
from sense_plugin.timestamps import now_us
from tests.store_contract import T0, file_info
from tests.unit.fakeworker import Lab, settle


@pytest.fixture
async def lab(tmp_path: Path) -> Lab:
    lab = await Lab(tmp_path).start()
    yield lab  # type: ignore[misc]
    await lab.close()


@pytest.fixture
async def lab2(tmp_path: Path) -> Lab:
    lab = await Lab(tmp_path, workers=2).start()
    yield lab  # type: ignore[misc]
    await lab.close()


def statuses(lab: Lab, export_id: int) -> list[Status]:
    """The job statuses last written to the store."""
    return [j.status for j in lab.store.exports[export_id].jobs]


# -- the plain run --------------------------------------------------------------------------
async def test_a_queued_job_is_cut_recorded_once_and_forgotten(lab: Lab) -> None:
    export = await lab.export()
    job = export.jobs[0]
    assert lab.jobs.pending == {job.key}
    worker = await lab.cutting(job)
    assert job.status is Status.SYNCING and lab.jobs.running() == [job]
    run = lab.jobs.run_of(job)
    assert run is not None and run.worker is worker
    worker.complete()
    await lab.jobs.until_settled(job)
    assert job.status is Status.COMPLETED and job.progress == 100
    assert isinstance(run.outcome, Completed) and job.file is not None
    assert (export.directory / job.file.name).is_file()
    assert statuses(lab, export.export_id) == [Status.COMPLETED]
    assert export.finished_us is not None and lab.finals.calls == [(export.export_id,
                                                                    Status.COMPLETED)]
    await settle()
    assert not lab.jobs.has(job) and lab.jobs.running() == [] and lab.pool.idle_count == 1
    assert lab.finished == [job.key] and lab.archive.pinned == {}


async def test_progress_reported_by_the_worker_moves_the_job(lab: Lab) -> None:
    export = await lab.export()
    job = export.jobs[0]
    worker = await lab.cutting(job)
    worker.progress(30_000_000, 123_456)
    assert job.progress == 50 and job.bytes_written == 123_456
    worker.progress(60_000_000, 200_000)
    assert job.progress == 99  # 100 only once completed
    worker.complete()
    await lab.jobs.until_settled(job)
    assert job.progress == 100


async def test_a_worker_error_fails_the_job_with_its_code_and_deletes_the_partial(
        lab: Lab) -> None:
    export = await lab.export()
    job = export.jobs[0]
    worker = await lab.cutting(job)
    partial = worker.write_partial()
    worker.fail(ResultCode.STORAGE_ERROR, "disk full")
    await lab.jobs.until_settled(job)
    assert job.status is Status.FAILED and job.errorcode == int(ResultCode.STORAGE_ERROR)
    assert job.description == "disk full" and not partial.exists()
    assert lab.finals.calls == [(export.export_id, Status.FAILED)]


async def test_a_dead_worker_fails_its_job_and_is_replaced_for_the_next(lab: Lab) -> None:
    first = await lab.export()
    second = await lab.export()
    worker = await lab.cutting(first.jobs[0])
    worker.kill()
    await lab.jobs.until_settled(first.jobs[0])
    assert first.jobs[0].status is Status.FAILED and "died" in first.jobs[0].description
    fresh = await lab.cutting(second.jobs[0])
    assert fresh is not worker and fresh.alive and lab.pool.renewed == 1
    fresh.complete()
    await lab.jobs.until_settled(second.jobs[0])
    assert second.jobs[0].status is Status.COMPLETED


async def test_the_stall_watchdog_kills_a_silent_worker_and_fails_the_job(
        tmp_path: Path) -> None:
    lab = await Lab(tmp_path, stall_s=0.5).start()
    try:
        export = await lab.export()
        job = export.jobs[0]
        worker = await lab.cutting(job)
        await lab.jobs.until_settled(job)
        assert worker.killed and job.status is Status.FAILED
        assert "no progress for 0.5 s" in job.description
        assert job.bandwidth_kbps == 0  # its rate fell to 0 before it was stopped
    finally:
        await lab.close()


async def test_a_job_is_queued_once(lab: Lab) -> None:
    export = await lab.export()
    lab.jobs.enqueue(export.jobs[0])
    worker = await lab.cutting(export.jobs[0])
    lab.jobs.enqueue(export.jobs[0])
    worker.complete()
    await lab.jobs.until_settled(export.jobs[0])
    await settle()
    assert len(worker.cuts) == 1 and lab.finished == [export.jobs[0].key]


# -- stop -------------------------------------------------------------------------------------
async def test_stop_while_cutting_ends_the_file_and_keeps_it(lab: Lab) -> None:
    export = await lab.export()
    job = export.jobs[0]
    worker = await lab.cutting(job)
    await lab.jobs.finish(job)  # returns once settled
    assert worker.finish_asked and job.status is Status.COMPLETED
    assert job.stopped and job.end_us == job.start_us + 1_000_000


async def test_stop_before_the_first_frame_is_removed(lab: Lab) -> None:
    export = await lab.export()
    job = export.jobs[0]
    worker = await lab.cutting(job)
    worker.on_finish = "no_record"
    await lab.jobs.finish(job)
    assert worker.finish_asked and job.status is Status.REMOVED and job.file is None


async def test_stop_racing_the_completion_records_one_outcome(lab: Lab) -> None:
    export = await lab.export()
    job = export.jobs[0]
    worker = await lab.cutting(job)
    run = lab.jobs.run_of(job)
    assert run is not None
    worker.on_finish = "ignore"
    worker.complete()  # the worker's Done is on its way as the stop is asked
    await lab.jobs.finish(job)
    assert job.status is Status.COMPLETED and not job.stopped
    saves = [w for w in lab.store.writes if w[0] == "save_job" and w[3] is Status.COMPLETED]
    assert len(saves) == 1 and isinstance(run.outcome, Completed)


async def test_stop_of_a_queued_job_removes_it_without_a_worker(lab: Lab) -> None:
    busy = await lab.export()
    queued = await lab.export()
    worker = await lab.cutting(busy.jobs[0])
    await lab.jobs.finish(queued.jobs[0])
    assert queued.jobs[0].status is Status.REMOVED and len(worker.cuts) == 1
    assert lab.jobs.pending == set() and not lab.jobs.has(queued.jobs[0])
    worker.complete()
    await lab.jobs.until_settled(busy.jobs[0])


async def test_stop_while_planning_writes_nothing_and_is_removed(lab: Lab) -> None:
    lab.plan_gate = asyncio.Event()
    export = await lab.export()
    job = export.jobs[0]
    while not lab.planned:
        await asyncio.sleep(0)
    stopping = asyncio.create_task(lab.jobs.finish(job))
    await settle()
    lab.plan_gate.set()
    await stopping
    assert job.status is Status.REMOVED and lab.pool.workers[0].cuts == []


# -- remove -----------------------------------------------------------------------------------
async def test_remove_while_cutting_cancels_the_worker_and_deletes_the_partial(
        lab: Lab) -> None:
    export = await lab.export()
    job = export.jobs[0]
    worker = await lab.cutting(job)
    partial = worker.write_partial()
    await lab.jobs.cancel(job)
    assert worker.cancel_asked and job.status is Status.REMOVED and not partial.exists()
    assert lab.finals.calls == []  # a REMOVED export has no manifest


async def test_remove_racing_the_start_never_reaches_the_worker(lab: Lab) -> None:
    lab.plan_gate = asyncio.Event()
    export = await lab.export()
    job = export.jobs[0]
    while not lab.planned:
        await asyncio.sleep(0)
    assert job.status is Status.SYNCING
    removing = asyncio.create_task(lab.jobs.cancel(job))
    await settle()
    lab.plan_gate.set()
    await removing
    assert job.status is Status.REMOVED and lab.pool.workers[0].cuts == []
    assert lab.pool.idle_count == 1


async def test_remove_asked_before_the_run_began_needs_no_worker(lab: Lab) -> None:
    export = await lab.export()
    job = export.jobs[0]
    await lab.jobs.cancel(job)  # its task has not run a step yet
    assert job.status is Status.REMOVED and lab.planned == []


async def test_remove_while_waiting_for_a_worker_leaves_the_queue(lab: Lab) -> None:
    busy = await lab.export()
    waiting = await lab.export()
    later = await lab.export()
    worker = await lab.cutting(busy.jobs[0])
    assert lab.jobs.pending == {waiting.jobs[0].key, later.jobs[0].key}
    await lab.jobs.cancel(waiting.jobs[0])
    assert waiting.jobs[0].status is Status.REMOVED
    assert lab.jobs.pending == {later.jobs[0].key}
    worker.complete()
    nxt = await lab.cutting(later.jobs[0])  # the freed worker goes to the next in line
    assert nxt is worker
    nxt.complete()
    await lab.jobs.until_settled(later.jobs[0])


async def test_a_cancel_outweighs_a_stop_asked_before_it(lab: Lab) -> None:
    export = await lab.export()
    job = export.jobs[0]
    worker = await lab.cutting(job)
    worker.on_finish = "ignore"
    run = lab.jobs.run_of(job)
    assert run is not None
    run.request(Ask.FINISH)
    await lab.jobs.cancel(job)
    assert run.asked is Ask.CANCEL and job.status is Status.REMOVED
    run.request(Ask.FINISH)  # nothing weaker replaces it
    assert run.asked is Ask.CANCEL


# -- shutdown and restart ---------------------------------------------------------------------
async def test_shutdown_mid_cut_interrupts_the_job_and_queues_it_again(lab: Lab) -> None:
    export = await lab.export()
    job = export.jobs[0]
    worker = await lab.cutting(job)
    worker.progress(30_000_000, 1000)
    run = lab.jobs.run_of(job)
    await lab.jobs.close()
    assert worker.cancel_asked and run is not None and isinstance(run.outcome, Interrupted)
    assert job.status is Status.PENDING and job.progress == 0 and job.bytes_written == 0
    assert statuses(lab, export.export_id) == [Status.PENDING] and lab.pool.closed


async def test_a_job_interrupted_by_a_restart_runs_again_from_the_start(lab: Lab) -> None:
    export = await lab.export()
    job = export.jobs[0]
    await lab.cutting(job)
    await lab.jobs.close()
    lab.jobs = lab.new_dispatcher()  # the next start, on the same store
    await lab.jobs.start()
    lab.jobs.enqueue(job)
    worker = await lab.cutting(job)
    assert job.status is Status.SYNCING
    worker.complete()
    await lab.jobs.until_settled(job)
    assert job.status is Status.COMPLETED and len(worker.cuts) == 2


async def test_shutdown_leaves_queued_jobs_pending_and_writes_nothing(lab: Lab) -> None:
    busy = await lab.export()
    queued = await lab.export(jobs=3)
    await lab.cutting(busy.jobs[0])
    writes = len(lab.store.writes)
    await lab.jobs.close()
    assert [j.status for j in queued.jobs] == [Status.PENDING] * 3
    assert [w[1] for w in lab.store.writes[writes:]] == [busy.export_id]  # its requeue only
    assert not any(lab.jobs.has(j) for j in queued.jobs)


async def test_shutdown_while_planning_interrupts_the_job(lab: Lab) -> None:
    lab.plan_gate = asyncio.Event()
    export = await lab.export()
    while not lab.planned:
        await asyncio.sleep(0)
    closing = asyncio.create_task(lab.jobs.close())
    await settle()
    lab.plan_gate.set()
    await closing
    assert export.jobs[0].status is Status.PENDING and lab.pool.workers[0].cuts == []


# -- a failing store ---------------------------------------------------------------------------
async def test_a_store_failing_at_the_record_is_logged_and_written_later(
        lab: Lab, caplog: pytest.LogCaptureFixture) -> None:
    export = await lab.export()
    job = export.jobs[0]
    worker = await lab.cutting(job)
    lab.store.fail("save_job")
    worker.complete()
    await lab.jobs.until_settled(job)
    assert job.status is Status.COMPLETED and job.key in lab.book.unsaved_jobs
    assert "injected" in caplog.text
    completed = ("save_job", export.export_id, 0, Status.COMPLETED)
    assert completed not in lab.store.writes
    await lab.book.save_unsaved()
    assert completed in lab.store.writes and lab.book.unsaved_jobs == {}
    await settle()
    assert lab.pool.idle_count == 1  # the worker went back all the same


async def test_a_store_failing_at_the_start_fails_the_job_without_cutting(lab: Lab) -> None:
    lab.store.fail("save_job")
    export = await lab.export()
    job = export.jobs[0]
    await lab.jobs.until_settled(job)
    assert job.status is Status.FAILED and "injected" in job.description
    assert lab.pool.workers[0].cuts == [] and lab.planned == []


# -- sharing the workers ----------------------------------------------------------------------
async def test_a_settled_run_hands_its_worker_to_the_next_in_line(lab: Lab) -> None:
    exports = [await lab.export(owner=name) for name in ("alice", "bob", "carol")]
    worker = await lab.cutting(exports[0].jobs[0])
    for export in exports[1:]:
        assert export.jobs[0].status is Status.PENDING
    worker.fail(ResultCode.GENERAL_ERROR, "broken")
    assert await lab.cutting(exports[1].jobs[0]) is worker
    worker.complete()
    assert await lab.cutting(exports[2].jobs[0]) is worker
    worker.complete()
    await lab.jobs.until_settled(exports[2].jobs[0])
    assert [e.jobs[0].status for e in exports] == [Status.FAILED, Status.COMPLETED,
                                                    Status.COMPLETED]


async def test_an_exports_bandwidth_cap_is_shared_by_its_running_jobs(lab2: Lab) -> None:
    export = await lab2.export(jobs=2, bandwidth_kbps=8000)
    first = await lab2.cutting(export.jobs[0])
    second = await lab2.cutting(export.jobs[1])
    await settle()
    assert first.rates[-1] == second.rates[-1] == 4000
    second.complete()
    await lab2.jobs.until_settled(export.jobs[1])
    assert first.rates[-1] == 8000
    first.complete()
    await lab2.jobs.until_settled(export.jobs[0])
    assert export.status is Status.COMPLETED


async def test_two_workers_run_two_jobs_and_a_third_waits(lab2: Lab) -> None:
    export = await lab2.export(jobs=3)
    a, b = [await lab2.cutting(j) for j in export.jobs[:2]]
    assert lab2.jobs.pending == {export.jobs[2].key}
    assert sorted(j.index for j in lab2.jobs.running()) == [0, 1]
    a.complete()
    assert await lab2.cutting(export.jobs[2]) is a
    a.complete()
    b.complete()
    for job in export.jobs:
        await lab2.jobs.until_settled(job)
    assert export.status is Status.COMPLETED and len(lab2.finals.calls) == 1


async def test_every_outcome_kind_reaches_the_book(lab: Lab) -> None:
    export = await lab.export(jobs=4, queue=False)
    kinds = (Completed((file_info("a.mp4", T0),), None, False, 1), JobFailed(-18, "x"),
             Interrupted(), Removed())
    for job, outcome in zip(export.jobs, kinds, strict=True):
        await lab.book.start(job)
        await lab.book.record(job, outcome)
    assert [j.status for j in export.jobs] == [Status.COMPLETED, Status.FAILED,
                                               Status.PENDING, Status.REMOVED]


async def test_a_settled_run_hands_its_worker_to_the_least_served_user(lab: Lab) -> None:
    alice = await lab.export(jobs=3, owner="alice")
    bob = await lab.export(jobs=1, owner="bob")
    worker = await lab.cutting(alice.jobs[0])
    worker.complete()
    assert await lab.cutting(bob.jobs[0]) is worker  # before alice's second
    assert [j.status for j in alice.jobs[1:]] == [Status.PENDING] * 2
    worker.complete()
    assert await lab.cutting(alice.jobs[1]) is worker
    await lab.jobs.cancel(alice.jobs[1])
    await lab.jobs.cancel(alice.jobs[2])
    assert [j.status for j in alice.jobs] == [Status.COMPLETED, Status.REMOVED, Status.REMOVED]


# -- resuming at start -------------------------------------------------------------------------
async def test_resume_queues_a_job_running_at_a_crash_again_from_the_start(lab: Lab) -> None:
    export = await lab.export(jobs=2, queue=False)
    running, waiting = export.jobs
    await lab.book.start(running)  # then the server died
    running.progress = 40
    leftover = export.directory / (files.planned_name(export, running) + ".part")
    leftover.write_bytes(b"half a file")
    lab.plan_gate = asyncio.Event()  # hold the first run in planning to look at it
    await lab.jobs.resume(export)
    assert running.status is Status.PENDING and running.progress == 0
    assert not leftover.exists()
    assert lab.jobs.pending == {running.key, waiting.key}
    lab.plan_gate.set()
    for job in export.jobs:
        (await lab.cutting(job)).complete()
        await lab.jobs.until_settled(job)
    assert export.status is Status.COMPLETED


async def test_a_live_job_ahead_follows_and_one_past_is_queued(lab: Lab) -> None:
    export = await lab.export(jobs=2, queue=False, options=ExportOptions(mode="live",
                                                                          timestamps="subtitle"))
    ahead, past = export.jobs
    ahead.end_us = now_us() + 60_000_000
    lab.jobs.queue(export, ahead)
    lab.jobs.queue(export, past)  # its range ended long ago: cut at once
    assert lab.jobs.live_unfinished() == {ahead.key} and lab.jobs.pending == {past.key}
    (await lab.cutting(past)).complete()
    await lab.jobs.until_settled(past)
    await lab.jobs.cancel(ahead)
    assert (past.status, ahead.status) == (Status.COMPLETED, Status.REMOVED)
