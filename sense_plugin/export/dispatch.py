"""Running device jobs: a FIFO queue, dispatchers, a bounded pool of worker processes.

Each dispatcher takes the next PENDING job, waits for a free worker, marks the job SYNCING
in the book, lets the :class:`~sense_plugin.export.runner.JobRunner` run it and hands the
:data:`~sense_plugin.export.runner.Outcome` to the book. A job has *settled* once its
outcome is recorded: remove and stop wait for that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Executor

from sense_plugin.archive.service import Archive
from sense_plugin.config import Config
from sense_plugin.errors import SenseError
from sense_plugin.export.book import JobBook
from sense_plugin.export.model import Job, Status
from sense_plugin.export.pool import WorkerPool, WorkerProcess
from sense_plugin.export.runner import Completed, Interrupted, JobFailed, JobRunner, Outcome

log = logging.getLogger(__name__)


class JobDispatcher:
    """The queue of PENDING jobs and the workers that run them."""

    def __init__(self, config: Config, archive: Archive, book: JobBook, io: Executor) -> None:
        self._book = book
        self._size = config.export.max_concurrent_jobs
        self._queue: asyncio.Queue[Job] = asyncio.Queue()
        #: Keys of the jobs waiting in the queue (a job removed meanwhile is skipped).
        self.pending: set[tuple[int, int]] = set()
        self._pool = WorkerPool(self._size)
        self._runner = JobRunner(config, archive, book, io)
        self._tasks: list[asyncio.Task[None]] = []
        self._settled: dict[tuple[int, int], asyncio.Event] = {}
        #: Jobs enqueued and not yet run to their end (``until_settled``).
        self._waiting: dict[tuple[int, int], asyncio.Event] = {}
        self._jobs_running: dict[tuple[int, int], Job] = {}
        self._closing = False
        #: Called with each job the runner has finished with (observers: metrics).
        self.on_job_finished: list[Callable[[Job], None]] = []

    async def start(self) -> None:
        await self._pool.start()
        self._tasks = [asyncio.create_task(self._dispatch(), name=f"export-dispatch-{i}")
                       for i in range(self._size)]

    def stop_starting(self) -> None:
        """No job starts from now on (shutdown)."""
        self._closing = True

    async def close(self) -> None:
        """Interrupt running jobs (they run again next time), stop the workers."""
        self._closing = True
        await self._runner.cancel_all()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._pool.close()

    def enqueue(self, job: Job) -> None:
        self.pending.add(job.key)
        self._waiting.setdefault(job.key, asyncio.Event())
        self._queue.put_nowait(job)

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
        if job.status is not Status.SYNCING:
            self._release(job)

    def _release(self, job: Job) -> None:
        waiting = self._waiting.pop(job.key, None)
        if waiting is not None:
            waiting.set()

    async def run_now(self, job: Job) -> None:
        """Run a live job outside the queue on the next free worker: its cut once recorded
        (PENDING), or a cut while it records (SYNCING since it started following)."""
        proc = await self._pool.acquire()
        try:
            if job.status in (Status.PENDING, Status.SYNCING) and not self._closing:
                await self._execute(job, proc)
        finally:
            self._pool.release(proc)

    async def cancel(self, job: Job) -> None:
        """Stop a running job, deleting what it wrote; wait until it has settled."""
        await self._runner.cancel(job)
        await self._settle(job)

    async def finish(self, job: Job) -> None:
        """End a running job now, keeping what it wrote; wait until it has settled."""
        await self._runner.finish(job)
        await self._settle(job)

    async def _dispatch(self) -> None:
        while True:
            job = await self._queue.get()
            if self._closing:
                return
            if job.status is not Status.PENDING or job.key not in self.pending:
                continue
            proc = await self._pool.acquire()
            try:
                if job.status is Status.PENDING and not self._closing:
                    self.pending.discard(job.key)
                    await self._execute(job, proc)
            finally:
                self._pool.release(proc)

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
                                              outcome.split, outcome.bandwidth_kbps,
                                              outcome.note)
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
