"""Running device jobs: a fair queue across users, a bounded pool of worker processes.

Each device job queued on this server (or following its recording, when live) is one
:class:`~sense_plugin.export.jobrun.JobRun`, kept here by key until it settles. Whenever a
worker is free, :class:`~sense_plugin.export.fairness.FairQueue` names the run to give it to
(least cost served first, per-user caps: ``docs/scheduling.rst``). Remove, stop, shutdown and
a site's requests ask the run and wait for it to settle (:meth:`JobDispatcher.cancel`,
:meth:`JobDispatcher.finish`, :meth:`JobDispatcher.close`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from typing import Any

from sense_plugin.archive.service import Archive
from sense_plugin.config import Config
from sense_plugin.export import files
from sense_plugin.export.book import JobBook
from sense_plugin.export.fairness import (
    MIN_COST_S,
    FairQueue,
    Limits,
    Ticket,
    default_per_user,
    job_cost,
)
from sense_plugin.export.jobrun import Ask, JobRun
from sense_plugin.export.live import LiveFollower
from sense_plugin.export.model import Export, Job, Status
from sense_plugin.export.pool import WorkerPool, WorkerProcess
from sense_plugin.export.runner import JobRunner, Planner
from sense_plugin.timestamps import now_us

log = logging.getLogger(__name__)
Key = tuple[int, int]


def fair_limits(config: Config) -> Limits:
    """The worker count and the per-user cap (authentication on only: with it off every
    client is the one anonymous user)."""
    workers = config.export.max_concurrent_jobs
    cap = config.export.max_running_jobs_per_user or default_per_user(workers)
    return Limits(workers, cap if config.auth.enabled else 0)


class JobDispatcher:
    """This server's runs, the fair queue they wait in and the workers that cut them."""

    def __init__(self, config: Config, archive: Archive, book: JobBook, io: Executor, *,
                 pool: WorkerPool | None = None, plan: Planner | None = None) -> None:
        """``pool`` and ``plan``: the worker pool and the planning step (unit tests pass
        fakes)."""
        self._book, self._io = book, io
        self._roots = config.server.export_roots
        self._render_weight = config.export.render_cost_weight
        self._pool = pool or WorkerPool(config.export.max_concurrent_jobs)
        self._fair = FairQueue(fair_limits(config))
        self._seq = 0
        #: Every run here, from queued (or following) until it settles.
        self._runs: dict[Key, JobRun] = {}
        self._runner = JobRunner(config, archive, book, io, self._runs, plan)
        self._live = LiveFollower(config, archive, book)
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = False
        self._closing = False
        #: Called with each job a worker has finished with (observers: metrics).
        self.on_job_finished: list[Callable[[Job], None]] = []

    async def start(self) -> None:
        await self._pool.start()
        self._started = True
        self._schedule()

    def stop_starting(self) -> None:
        """No job starts from now on (shutdown)."""
        self._closing = True

    async def close(self) -> None:
        """Ask every run to stop for the shutdown (a job being cut runs again next time, one
        waiting stays as it is), wait until they have settled, stop the workers."""
        self._closing = True
        await asyncio.gather(*(run.ask(Ask.SHUTDOWN) for run in list(self._runs.values())))
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._pool.close()

    # -- runs ------------------------------------------------------------------------------
    async def resume(self, export: Export) -> None:
        """Queue again the unfinished jobs of an export found in the store at start: one
        SYNCING was running when the server stopped and starts again from the beginning,
        its partial file deleted."""
        for job in export.jobs:
            if job.status is Status.SYNCING:
                log.info("export %s device %s: interrupted by a restart, queued again",
                         export.export_id, job.device_id)
                await self._book.requeue(job)
                await asyncio.get_running_loop().run_in_executor(
                    self._io, files.remove_partial, export, job, self._roots)
            if job.status is Status.PENDING:
                self.queue(export, job)

    def queue(self, export: Export, job: Job) -> None:
        """Queue a PENDING job; a live one whose range is still ahead follows its recording
        first (SYNCING at once, queued for its cut at the end)."""
        if export.options.live and not export.options.snapshot and job.end_us > now_us():
            self.follow(job)
        else:
            self.enqueue(job)

    def enqueue(self, job: Job) -> None:
        """Queue ``job`` for a worker (once: a job queued or running here already is left)."""
        if job.key not in self._runs:
            self._spawn(self._new_run(job, live=False), None)

    def follow(self, job: Job) -> None:
        """A live job: SYNCING at once, following its recording (``export/live.py``)."""
        if job.key not in self._runs:
            run = self._new_run(job, live=True)
            self._spawn(run, self._live.follow(run))

    def has(self, job: Job) -> bool:
        """The job is queued, following or running here."""
        return job.key in self._runs

    def run_of(self, job: Job) -> JobRun | None:
        """The job's run here, if any."""
        return self._runs.get(job.key)

    @property
    def pending(self) -> set[Key]:
        """Keys of the (not live) jobs waiting for a worker (admission counts them)."""
        return {k for k, r in self._runs.items() if r.waiting and not r.live}

    def live_unfinished(self) -> set[Key]:
        """Keys of the live jobs not finished yet (waiting, or cut as they record)."""
        return {k for k, r in self._runs.items() if r.live}

    def running(self) -> list[Job]:
        """The jobs a worker is cutting now."""
        return [r.job for r in self._runs.values() if r.worker is not None]

    async def until_settled(self, job: Job) -> None:
        """Wait until the job's run here (if any) has settled."""
        run = self._runs.get(job.key)
        if run is not None:
            await run.wait_settled()

    async def cancel(self, job: Job) -> None:
        """Stop the job's run, deleting what it wrote; wait until it has settled."""
        run = self._runs.get(job.key)
        if run is not None:
            await run.ask(Ask.CANCEL)

    async def finish(self, job: Job) -> None:
        """End the job's run now keeping what it wrote (a run still waiting for a worker
        wrote nothing: REMOVED); wait until it has settled."""
        run = self._runs.get(job.key)
        if run is not None:
            await run.ask(Ask.FINISH)

    def _new_run(self, job: Job, live: bool) -> JobRun:
        run = JobRun(job, self._book, self._runner, self, live=live,
                     on_finished=self._job_finished)
        self._runs[job.key] = run
        return run

    def _spawn(self, run: JobRun, follow: Coroutine[Any, Any, None] | None) -> None:
        task = asyncio.create_task(self._drive(run, follow),
                                   name=f"export-{run.job.export_id}-{run.job.index}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drive(self, run: JobRun, follow: Coroutine[Any, Any, None] | None) -> None:
        """The run's task: its whole way here; once it has settled, it is forgotten."""
        try:
            await (run.run() if follow is None else follow)
        finally:
            if self._runs.get(run.key) is run:
                del self._runs[run.key]
            run.mark_settled()

    def _job_finished(self, job: Job) -> None:
        for hook in self.on_job_finished:
            hook(job)

    # -- workers ---------------------------------------------------------------------------
    async def take(self, run: JobRun, holds: bool) -> WorkerProcess | None:
        """A worker for ``run`` once the fair queue names it (renewed if it died); None once
        the run was asked to end meanwhile."""
        offer = run.offer()
        assert offer is not None
        self._fair.add(self._ticket(run.job, holds))
        self._schedule()
        try:
            proc = await offer
        except asyncio.CancelledError:
            given = offer.result() if offer.done() and not offer.cancelled() else None
            if given is None:
                self._fair.discard(run.key)
            else:  # handed over just as the wait was cancelled
                self.give_back(run, given)
            raise
        if proc is None:  # withdrawn: it leaves the queue
            self._fair.discard(run.key)
            return None
        try:
            return await self._pool.renew(proc)
        except BaseException:
            self.give_back(run, proc)
            raise

    def give_back(self, run: JobRun, proc: WorkerProcess) -> None:
        self._pool.release(proc)
        self._fair.done(run.key)
        self._schedule()

    def _ticket(self, job: Job, holds: bool) -> Ticket:
        self._seq += 1
        try:
            export = self._book.active_export(job.export_id)
        except KeyError:  # finished meanwhile: it waits for nothing, then is skipped
            return Ticket(job.key, "", MIN_COST_S, self._seq, holds)
        rendered = export.options.render is not None
        span_us = 0 if export.options.snapshot else job.end_us - job.start_us
        # a paced job, like a live one, keeps its worker for a time its cap decides, not the
        # work: it never borrows a worker past its user's cap
        holds = holds or export.bandwidth_limit_kbps > 0
        return Ticket(job.key, export.owner, job_cost(span_us, rendered, self._render_weight),
                      self._seq, holds)

    def _schedule(self) -> None:
        """Hand every free worker to the run the fair queue names, while it names one."""
        while self._started and not self._closing and self._pool.idle_count:
            ticket = self._fair.pop_next(self._pool.idle_count)
            if ticket is None:
                return
            proc = self._pool.take()
            run = self._runs.get(ticket.key)
            offer = None if run is None else run.offer()
            if offer is not None and not offer.done():
                offer.set_result(proc)
                continue
            self._pool.release(proc)  # asked to end as its worker came: give it back
            self._fair.done(ticket.key)
