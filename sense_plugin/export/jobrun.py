"""One object per running device job: everything about it, and the one outcome it records.

A :class:`JobRun` lives from the moment a device job is queued on this server (or starts
following its recording, when live) until its outcome is recorded. It holds the job, the
worker once one is given, what was asked of it (finish, cancel, shutdown) and an event set
once it has settled. Whoever wants a job to end asks its run and waits for the settling;
nobody else keeps state keyed by job (``docs/scheduling.rst``, "One object per running job").
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from typing import Protocol

from sense_plugin.errors import SenseError
from sense_plugin.export.book import JobBook
from sense_plugin.export.model import Export, Job, Status
from sense_plugin.export.outcome import JobFailed, Outcome, Removed
from sense_plugin.export.pool import WorkerProcess

log = logging.getLogger(__name__)


class Ask(enum.IntEnum):
    """What a run was asked, strongest last: a cancel outweighs a shutdown, a shutdown a
    finish (a job removed during the shutdown is removed, not run again)."""

    FINISH = 1  # action=stop, keepalive, a stop asked by another server: keep what was written
    SHUTDOWN = 2  # the server stops: the job runs again from the start next time
    CANCEL = 3  # action=remove, here or on another server: delete what was written


class Workers(Protocol):
    """The dispatcher's side of a run: a worker from the fair queue, and back."""

    async def take(self, run: JobRun, holds: bool) -> WorkerProcess | None:
        """A worker for ``run`` once the fair queue names it; None once it was asked to end
        meanwhile (it leaves the queue)."""

    def give_back(self, run: JobRun, proc: WorkerProcess) -> None:
        """``proc`` is free again (the next job in the fair queue gets it)."""


class Cutter(Protocol):
    """Plans and cuts a run's job on a worker (``export/runner.py``)."""

    async def run(self, run: JobRun, export: Export, proc: WorkerProcess) -> Outcome:
        """What became of the job."""


class JobRun:
    """A device job on its way through this server: queued, following, planning, cutting."""

    def __init__(self, job: Job, book: JobBook, runner: Cutter, workers: Workers, *,
                 live: bool = False, on_finished: Callable[[Job], None] | None = None) -> None:
        self.job = job
        #: A live job: it follows its recording before (or while) it is cut (export/live.py).
        self.live = live
        #: The worker cutting the job now (set by the runner while the cut runs).
        self.worker: WorkerProcess | None = None
        #: The strongest thing asked of the run so far (None: let it run to its end).
        self.asked: Ask | None = None
        #: The strongest thing another server of a site asked (it asks each tick until the
        #: job has ended: the run is asked once).
        self.site_asked: Ask | None = None
        #: Live: past the wait for its recording (its cut waits for or runs on a worker).
        self.cutting = not live
        #: Set by the stall watchdog before it kills the worker.
        self.stalled = False
        #: What the run recorded (None: nothing yet, or it ended without a record).
        self.outcome: Outcome | None = None
        self._book, self._runner, self._workers = book, runner, workers
        self._on_finished = on_finished
        self._offer: asyncio.Future[WorkerProcess | None] | None = None
        self._started = False
        self._wake = asyncio.Event()  # a live run waiting for its recording is asked to end
        self._settled = asyncio.Event()

    @property
    def key(self) -> tuple[int, int]:
        return self.job.key

    @property
    def export(self) -> Export:
        return self._book.active_export(self.job.export_id)

    @property
    def waiting(self) -> bool:
        """Queued for a worker and not started (what admission counts as queued)."""
        return not self._started and self.cutting

    @property
    def following(self) -> bool:
        """Live, waiting for its recording (no worker asked for yet)."""
        return not self.cutting

    @property
    def settled(self) -> bool:
        return self._settled.is_set()

    # -- asking ----------------------------------------------------------------------------
    def request(self, what: Ask) -> None:
        """Note ``what`` was asked and pass it on at once to whatever the run waits for; the
        worker's own stop (a cancel) is :meth:`ask`'s part."""
        if self.asked is not None and self.asked >= what:
            return
        self.asked = what
        self._wake.set()
        if self._offer is not None and not self._offer.done():
            self._offer.set_result(None)  # withdrawn from the fair queue: no worker needed
        elif self.worker is not None and what is Ask.FINISH:
            self.worker.finish()

    async def ask(self, what: Ask) -> None:
        """Ask the run to end and wait until it has settled."""
        self.request(what)
        if self.worker is not None and what is not Ask.FINISH:
            await self.worker.cancel()
        await self.wait_settled()

    async def wait_settled(self) -> None:
        await self._settled.wait()

    def take_finish(self) -> None:
        """A live run's stop came while it followed its recording: the stop is used up (its
        range now ends at the stop) and the cut that follows runs to that end."""
        if self.asked is Ask.FINISH:
            self.asked = None
            self._wake.clear()

    async def wait_asked(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for anything to be asked; True once it has been."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._wake.wait()
        except TimeoutError:
            pass
        return self.asked is not None

    # -- running ---------------------------------------------------------------------------
    async def run(self) -> None:
        """A queued job's whole way: wait for a worker, start, plan, cut, record."""
        await self.cut(holds=False)

    async def cut(self, holds: bool) -> None:
        """Wait in the fair queue for a worker (``holds``: it keeps it until its range ends),
        then start, plan, cut and record the outcome. Asked to end before a worker was free,
        it wrote nothing: REMOVED (nothing at all for the shutdown: it runs next time)."""
        self.cutting = True
        proc = None
        if self.asked is None:  # asked before it was queued: it needs no worker
            self._offer = asyncio.get_running_loop().create_future()
            proc = await self._workers.take(self, holds)
            self._offer = None
        if proc is None or self.asked is not None:
            if proc is not None:  # asked to end as its worker came: nothing was written
                self._workers.give_back(self, proc)
            if self.asked is not Ask.SHUTDOWN and not self.job.terminal:
                log.info("export %s device %s: stopped before a worker was free",
                         self.job.export_id, self.job.device_id)
                await self.record(Removed())
            return
        try:
            if self.job.status in (Status.PENDING, Status.SYNCING):
                await self._execute(proc)
        finally:
            self._workers.give_back(self, proc)

    def offer(self) -> asyncio.Future[WorkerProcess | None] | None:
        """The future the dispatcher hands the worker through (None: not waiting)."""
        return self._offer

    async def _execute(self, proc: WorkerProcess) -> None:
        export = self.export
        self._started = True
        try:
            await self._book.start(self.job, resumed=export.options.live)
        except SenseError as exc:
            outcome: Outcome = JobFailed(int(exc.code), exc.description)
        else:
            outcome = await self._runner.run(self, export, proc)
        await self.record(outcome)
        if self._on_finished is not None:
            self._on_finished(self.job)

    async def record(self, outcome: Outcome) -> None:
        """Hand the run's one outcome to the book; a failing store is logged, never raised:
        the job's state stays right in memory (written again later) and the run settles."""
        assert self.outcome is None, "a run records one outcome"
        self.outcome = outcome
        try:
            await self._book.record(self.job, outcome)
        except SenseError as exc:
            log.error("export %s device %s: %s", self.job.export_id, self.job.device_id,
                      exc.description)

    def mark_settled(self) -> None:
        """The run is over (its task has ended): whoever waits for it goes on."""
        self._settled.set()
