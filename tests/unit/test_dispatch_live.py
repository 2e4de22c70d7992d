"""Live runs, keepalive and a site's requests, unit-tested on fake workers.

A live job's run follows its recording (here a fake archive's segments) before it is cut; a
stop ends its range at the stop, a remove or the shutdown end it while it waits. The
keepalive sweep runs on a fake monotonic clock. A site's requests (another server removed or
stopped a job running here) reach the run once, however often the upkeep sees them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from sense_plugin.errors import OutOfRangeError
from sense_plugin.export.jobrun import Ask
from sense_plugin.export.keepalive import KeepAlive
from sense_plugin.export.model import Export, Job, Status
from sense_plugin.export.outcome import Interrupted
from sense_plugin.export.siterole import SiteRole
from sense_plugin.media.exportoptions import ExportOptions
from sense_plugin.timestamps import now_us
from tests.unit.fakeworker import Lab, settle

#: Waited for its recording, then cut whole (a subtitle track is not cut while it records).
WAITED = ExportOptions(mode="live", timestamps="subtitle")
GROWN = ExportOptions(mode="live")


@pytest.fixture
async def lab(tmp_path: Path) -> Lab:
    lab = await Lab(tmp_path).start()
    yield lab  # type: ignore[misc]
    await lab.close()


async def live_export(lab: Lab, options: ExportOptions) -> Export:
    """A live export of one device whose range runs from a second ago to a minute ahead."""
    export = await lab.export(options=options, queue=False)
    job = export.jobs[0]
    job.start_us = now_us() - 1_000_000
    job.end_us = job.start_us + 61_000_000
    lab.jobs.follow(job)
    await settle()
    assert job.status is Status.SYNCING
    return export


# -- live runs ---------------------------------------------------------------------------------
async def test_a_waiting_live_job_stopped_is_cut_to_the_stop(lab: Lab) -> None:
    export = await live_export(lab, WAITED)
    job = export.jobs[0]
    assert lab.jobs.live_unfinished() == {job.key} and lab.jobs.pending == set()
    run = lab.jobs.run_of(job)
    assert run is not None and run.following and run.worker is None
    lab.archive.add_segment(job.start_us - 10_000_000, job.start_us + 30_000_000)
    stopping = asyncio.create_task(lab.jobs.finish(job))
    worker = await lab.cutting(job)
    assert job.stopped and job.end_us < job.start_us + 61_000_000
    assert worker.cut.source.end_us == job.end_us and not run.following
    worker.complete()
    await stopping
    assert job.status is Status.COMPLETED and job.stopped and run.asked is None


async def test_a_waiting_live_job_removed_needs_no_worker(lab: Lab) -> None:
    export = await live_export(lab, WAITED)
    job = export.jobs[0]
    await lab.jobs.cancel(job)
    assert job.status is Status.REMOVED and lab.planned == []
    assert lab.jobs.live_unfinished() == set()


async def test_a_waiting_live_job_stays_syncing_over_the_shutdown(lab: Lab) -> None:
    export = await live_export(lab, WAITED)
    job = export.jobs[0]
    writes = len(lab.store.writes)
    await lab.jobs.close()
    assert job.status is Status.SYNCING and lab.store.writes[writes:] == []


async def test_a_growing_live_job_is_fed_its_segments_as_they_come(lab: Lab) -> None:
    export = await live_export(lab, GROWN)
    job = export.jobs[0]
    worker = await lab.cutting(job)
    lab.archive.add_segment(job.start_us, job.start_us + 2_000_000)
    for _ in range(400):  # the follower looks for new segments every quarter second
        if worker.fed:
            break
        await asyncio.sleep(0.01)
    segments, ended = worker.fed[0]
    assert [s.start_us for s in segments] == [job.start_us] and not ended
    run = lab.jobs.run_of(job)
    await lab.jobs.close()  # the shutdown: it is cut again from the start next time
    assert run is not None and isinstance(run.outcome, Interrupted)
    assert job.status is Status.PENDING


async def test_a_growing_live_job_stopped_while_waiting_for_a_worker_is_removed(
        lab: Lab) -> None:
    busy = await lab.export()
    worker = await lab.cutting(busy.jobs[0])
    export = await live_export(lab, GROWN)
    job = export.jobs[0]
    await lab.jobs.finish(job)
    assert job.status is Status.REMOVED and len(worker.cuts) == 1
    worker.complete()
    await lab.jobs.until_settled(busy.jobs[0])


# -- keepalive ---------------------------------------------------------------------------------
class Stops:
    """The engine's stop as the keepalive calls it: recorded, held until released."""

    def __init__(self, book: Any) -> None:
        self.book = book
        self.asked: list[int] = []
        self.release = asyncio.Event()
        self.refuse = False

    async def __call__(self, export_id: int) -> None:
        self.asked.append(export_id)
        if self.refuse:
            raise OutOfRangeError(f"export {export_id} is COMPLETED")
        export = await self.book.get(export_id)
        export.stopping = True
        await self.release.wait()


class MonoClock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


async def keepalive_lab(lab: Lab) -> tuple[KeepAlive, Stops, MonoClock, Export]:
    clock, stops = MonoClock(), Stops(lab.book)
    keepalive = KeepAlive(lab.book, stops, clock=clock)
    export = await lab.export(options=ExportOptions(keepalive_s=30), queue=False)
    assert keepalive.sweep() == []  # first seen now
    return keepalive, stops, clock, export


async def test_keepalive_stops_a_forgotten_export_once(lab: Lab) -> None:
    keepalive, stops, clock, export = await keepalive_lab(lab)
    clock.now_s += 31
    assert keepalive.sweep() == [export.export_id]
    await settle()
    assert keepalive.sweep() == []  # its stop is under way
    stops.release.set()
    await settle()
    assert stops.asked == [export.export_id] and export.stopping
    assert keepalive.sweep() == []  # stopping: not asked again
    await keepalive.close()


async def test_a_poll_just_before_the_keepalive_ends_keeps_the_export(lab: Lab) -> None:
    keepalive, stops, clock, export = await keepalive_lab(lab)
    clock.now_s += 29.9
    keepalive.touch(export)  # a status request
    clock.now_s += 29.9
    assert keepalive.sweep() == [] and stops.asked == []
    clock.now_s += 0.2
    assert keepalive.sweep() == [export.export_id]
    stops.release.set()
    await keepalive.close()


async def test_a_keepalive_stop_refused_is_logged_and_tried_again(lab: Lab) -> None:
    keepalive, stops, clock, export = await keepalive_lab(lab)
    stops.refuse = True
    clock.now_s += 31
    keepalive.sweep()
    await settle()
    assert keepalive.sweep() == [export.export_id]  # the first is over: not stuck
    await settle()
    assert stops.asked == [export.export_id] * 2
    await keepalive.close()


# -- a site's requests -------------------------------------------------------------------------
class SiteStore:
    """The site store calls the role makes here (holdings only)."""

    def __init__(self) -> None:
        self.held: list[int] = []

    async def hold(self, export_id: int) -> None:
        self.held.append(export_id)


async def site_lab(tmp_path: Path) -> tuple[Lab, SiteRole]:
    lab = await Lab(tmp_path, site_server=1).start()

    async def run_io(func: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(lab.io, func, *args)

    role = SiteRole(lab.config, lab.book, SiteStore(), lab.jobs,  # type: ignore[arg-type]
                    run_io, lab.finals, lambda export_id: None, None)  # type: ignore
    return lab, role


async def adopt_and_cut(lab: Lab, role: SiteRole, export: Export) -> tuple[Job, Any, Any]:
    running = asyncio.create_task(role.run_device_job(export.export_id, 0))
    mine = None
    for _ in range(100):  # until the role has adopted the export

        await settle()
        try:
            mine = lab.book.active_export(export.export_id).jobs[0]
            break
        except KeyError:
            continue
    assert mine is not None
    return mine, await lab.cutting(mine), running


async def test_a_site_takes_over_a_job_it_was_running_when_it_stopped(tmp_path: Path) -> None:
    lab, role = await site_lab(tmp_path)
    try:
        export = await lab.export(queue=False)
        lab.store.exports[export.export_id].jobs[0].status = Status.SYNCING  # then it stopped
        mine, worker, running = await adopt_and_cut(lab, role, export)
        assert mine.status is Status.SYNCING and ("save_job", export.export_id, 0,
                                                  Status.PENDING) in lab.store.writes
        worker.complete()
        await running  # returns once the run has settled
        assert mine.status is Status.COMPLETED
    finally:
        await lab.close()


async def test_a_remove_on_another_server_reaches_the_run_once(tmp_path: Path) -> None:
    lab, role = await site_lab(tmp_path)
    try:
        export = await lab.export(queue=False)
        mine, worker, running = await adopt_and_cut(lab, role, export)
        stored = lab.book.active_export(export.export_id)
        partial = worker.write_partial()
        action = role.ask_here(stored, mine, cancel=True)
        assert action is not None and role.ask_here(stored, mine, cancel=True) is None
        await action
        await running
        assert mine.status is Status.REMOVED and worker.cancel_asked
        assert not partial.exists() and not lab.jobs.has(mine)
    finally:
        await lab.close()


async def test_a_stop_on_another_server_asked_every_tick_is_asked_once(tmp_path: Path) -> None:
    lab, role = await site_lab(tmp_path)
    try:
        export = await lab.export(queue=False)
        mine, worker, running = await adopt_and_cut(lab, role, export)
        stored = lab.book.active_export(export.export_id)
        worker.on_finish = "ignore"
        stopping = role.ask_here(stored, mine, cancel=False)
        assert stopping is not None and role.ask_here(stored, mine, cancel=False) is None
        run = lab.jobs.run_of(mine)
        assert run is not None and run.asked is Ask.FINISH and worker.finish_asked
        removing = role.ask_here(stored, mine, cancel=True)  # a remove still goes through
        assert removing is not None
        await asyncio.gather(stopping, removing, running)
        assert mine.status is Status.REMOVED
    finally:
        await lab.close()
