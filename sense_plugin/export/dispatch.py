"""Running device jobs: a fair queue across users, a bounded pool of worker processes.

Whenever a worker is free, :class:`~sense_plugin.export.fairness.FairQueue` names the job to
start (least cost served first, per-user caps: ``docs/scheduling.rst``); the dispatcher marks
it SYNCING in the book, lets the :class:`~sense_plugin.export.runner.JobRunner` run it and
hands the :data:`~sense_plugin.export.runner.Outcome` to the book. A job has *settled* once
its outcome is recorded: remove and stop wait for that. Live jobs ask for a worker through
:meth:`JobDispatcher.run_now` and wait in the same fair queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor

from sense_plugin.archive.service import Archive
from sense_plugin.config import Config
from sense_plugin.errors import SenseError
from sense_plugin.export.book import JobBook
from sense_plugin.export.fairness import (
    MIN_COST_S,
    FairQueue,
    Limits,
    Ticket,
    default_per_user,
    job_cost,
)
from sense_plugin.export.model import Job, Status
from sense_plugin.export.pool import WorkerPool, WorkerProcess
from sense_plugin.export.runner import (
    Completed,
    Interrupted,
    JobFailed,
    JobRunner,
    Outcome,
    Removed,
)

log = logging.getLogger(__name__)


def fair_limits(config: Config) -> Limits:
    """The worker count and the per-user cap (authentication on only: with it off every
    client is the one anonymous user)."""
    workers = config.export.max_concurrent_jobs
    cap = config.export.max_running_jobs_per_user or default_per_user(workers)
    return Limits(workers, cap if config.auth.enabled else 0)


class JobDispatcher:
    """The queue of PENDING jobs and the workers that run them."""

    def __init__(self, config: Config, archive: Archive, book: JobBook, io: Executor) -> None:
        self._book = book
        self._render_weight = config.export.render_cost_weight
        #: Keys of the jobs waiting in the queue (a job removed meanwhile is skipped).
        self.pending: set[tuple[int, int]] = set()
        self._pool = WorkerPool(config.export.max_concurrent_jobs)
        self._fair = FairQueue(fair_limits(config))
        self._seq = 0
        self._queued: dict[tuple[int, int], Job] = {}
        #: Live jobs waiting in :meth:`run_now`: the worker (None: stopped meanwhile).
        self._offers: dict[tuple[int, int], asyncio.Future[WorkerProcess | None]] = {}
        #: Set when a job's :meth:`run_now` has returned.
        self._waits: dict[tuple[int, int], asyncio.Event] = {}
        self._runner = JobRunner(config, archive, book, io)
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = False
        self._settled: dict[tuple[int, int], asyncio.Event] = {}
        #: Jobs enqueued and not yet run to their end (``until_settled``).
        self._waiting: dict[tuple[int, int], asyncio.Event] = {}
        self._jobs_running: dict[tuple[int, int], Job] = {}
        self._closing = False
        #: Called with each job the runner has finished with (observers: metrics).
        self.on_job_finished: list[Callable[[Job], None]] = []

    async def start(self) -> None:
        await self._pool.start()
        self._started = True
        self._schedule()

    def stop_starting(self) -> None:
        """No job starts from now on (shutdown)."""
        self._closing = True

    async def close(self) -> None:
        """Interrupt running jobs (they run again next time), stop the workers."""
        self._closing = True
        await self._runner.cancel_all()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for offer in self._offers.values():
            offer.cancel()
        await self._pool.close()

    def enqueue(self, job: Job) -> None:
        self.pending.add(job.key)
        self._waiting.setdefault(job.key, asyncio.Event())
        self._queued[job.key] = job
        self._fair.add(self._ticket(job, holds=False))
        self._schedule()

    def worker_of(self, job: Job) -> WorkerProcess | None:
        """The worker running ``job`` now, if any (a live export feeds it segments)."""
        return self._runner.worker_of(job)

    def has(self, job: Job) -> bool:
        """The job is queued or running here."""
        return job.key in self._waiting

    def running(self) -> list[Job]:
        """The jobs running on a worker now."""
        return list(self._jobs_running.values())

    async def until_settled(self, job: Job) -> None:
        """Wait until a job handed to :meth:`enqueue` has run (or was forgotten)."""
        waiting = self._waiting.get(job.key)
        if waiting is not None:
            await waiting.wait()

    def forget(self, job: Job) -> None:
        """A queued job that must not start (removed, stopped)."""
        self.pending.discard(job.key)
        if job.key in self._queued:
            del self._queued[job.key]
            self._fair.discard(job.key)
        if job.status is not Status.SYNCING:
            self._release(job)

    def _release(self, job: Job) -> None:
        waiting = self._waiting.pop(job.key, None)
        if waiting is not None:
            waiting.set()

    async def run_now(self, job: Job, holds: bool = False) -> None:
        """Run a live job outside the queue on a worker given by the fair queue: its cut once
        recorded (PENDING), or a cut while it records (SYNCING since it started following;
        ``holds``: it keeps the worker until its range ends). Stopped or removed before a
        worker was free (:meth:`_withdraw`), it wrote nothing and is REMOVED."""
        ended = self._waits[job.key] = asyncio.Event()
        try:
            proc = await self._wait_worker(job, holds)
            if proc is None:
                log.info("export %s device %s: stopped before a worker was free",
                         job.export_id, job.device_id)
                await self._record(job, Removed())
                return
            try:
                if job.status in (Status.PENDING, Status.SYNCING) and not self._closing:
                    proc = await self._pool.renew(proc)
                    await self._execute(job, proc)
            finally:
                self._free(job.key, proc)
        finally:
            ended.set()
            if self._waits.get(job.key) is ended:
                del self._waits[job.key]

    async def _wait_worker(self, job: Job, holds: bool) -> WorkerProcess | None:
        offer: asyncio.Future[WorkerProcess | None] = \
            asyncio.get_running_loop().create_future()
        self._offers[job.key] = offer
        self._fair.add(self._ticket(job, holds))
        self._schedule()
        try:
            return await offer
        except asyncio.CancelledError:
            given = offer.result() if offer.done() and not offer.cancelled() else None
            if given is not None:
                self._free(job.key, given)  # handed over just as the wait was cancelled
            raise
        finally:
            if self._offers.get(job.key) is offer:
                del self._offers[job.key]
                self._fair.discard(job.key)

    async def _withdraw(self, job: Job) -> bool:
        """A live job still waiting in :meth:`run_now` leaves the queue (REMOVED: nothing
        was written); True once it has. False for a job not waiting there."""
        offer = self._offers.get(job.key)
        ended = self._waits.get(job.key)
        if offer is None or offer.done() or ended is None:
            return False
        offer.set_result(None)
        await ended.wait()
        return True

    async def cancel(self, job: Job) -> None:
        """Stop a running job, deleting what it wrote; wait until it has settled."""
        if not await self._withdraw(job):
            await self._runner.cancel(job)
            await self._settle(job)

    async def finish(self, job: Job) -> None:
        """End a running job now, keeping what it wrote; wait until it has settled."""
        if not await self._withdraw(job):
            await self._runner.finish(job)
            await self._settle(job)

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
        """Hand every free worker to the job the fair queue names, while it names one."""
        while self._started and not self._closing and self._pool.idle_count:
            ticket = self._fair.pop_next(self._pool.idle_count)
            if ticket is None:
                return
            proc = self._pool.take()
            offer = self._offers.pop(ticket.key, None)
            if offer is not None and not offer.done():
                offer.set_result(proc)
                continue
            job = self._queued.pop(ticket.key, None)
            if job is None:  # a live job stopped as its worker came: give it back
                self._pool.release(proc)
                self._fair.done(ticket.key)
                continue
            task = asyncio.create_task(self._run_queued(job, proc),
                                       name=f"export-{job.export_id}-{job.index}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _free(self, key: tuple[int, int], proc: WorkerProcess) -> None:
        self._pool.release(proc)
        self._fair.done(key)
        self._schedule()

    async def _run_queued(self, job: Job, proc: WorkerProcess) -> None:
        try:
            if job.status is Status.PENDING and job.key in self.pending and not self._closing:
                self.pending.discard(job.key)
                proc = await self._pool.renew(proc)
                await self._execute(job, proc)
        finally:
            self._free(job.key, proc)

    async def _execute(self, job: Job, proc: WorkerProcess) -> None:
        """Run one job on ``proc`` and record its outcome; then it has settled."""
        export = self._book.active_export(job.export_id)
        self._settled[job.key] = asyncio.Event()
        self._jobs_running[job.key] = job
        try:
            try:
                await self._book.start(job, resumed=export.options.live)
            except SenseError as exc:
                outcome: Outcome = JobFailed(int(exc.code), exc.description)
            else:
                outcome = await self._runner.run(export, job, proc)
            await self._record(job, outcome)
            for hook in self.on_job_finished:
                hook(job)
        finally:
            self._jobs_running.pop(job.key, None)
            self._settled.pop(job.key).set()
            if job.status is not Status.PENDING:  # PENDING again: it runs another time
                self._release(job)

    async def _record(self, job: Job, outcome: Outcome) -> None:
        """Hand an outcome to the book; a failing store is logged, never raised: the job's
        state stays right in memory and the dispatcher must carry on."""
        try:
            match outcome:
                case Completed():
                    await self._book.complete(job, outcome.files, outcome.stopped_us,
                                              outcome.split, outcome.bandwidth_kbps)
                case JobFailed():
                    await self._book.fail(job, outcome.code, outcome.description)
                case Interrupted():
                    await self._book.requeue(job)
                case _:
                    await self._book.remove(job)
        except SenseError as exc:
            log.error("export %s device %s: %s", job.export_id, job.device_id, exc.description)

    async def _settle(self, job: Job) -> None:
        settled = self._settled.get(job.key)
        if settled is not None:
            await settled.wait()
