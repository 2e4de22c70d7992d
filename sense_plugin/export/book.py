"""The job book: every export's state, and the one place where it changes.

Each transition of a device job (queue, start, progress, complete, fail, stop, remove,
requeue, expire) and of an export (finish, purge) is a method here. A method changes the
job in memory, writes it through the :class:`~sense_plugin.export.storage.JobStore`, and
only then returns, so whoever is told of a change can rely on it surviving a crash.

Unfinished exports stay in memory (their progress moves between writes); finished ones are
read from the store when asked for and kept in a bounded cache (both held by
:class:`~sense_plugin.export.held.HeldExports`). Lists are answered by the store (filtered
and paged there), with the unfinished exports' live objects in place of their stored
copies. The book also keeps the tallies of exports and jobs by status (``/metrics``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import assert_never

from sense_plugin.errors import SenseError
from sense_plugin.export.held import HeldExports
from sense_plugin.export.model import Export, Job, Status, combine_statuses
from sense_plugin.export.outcome import Completed, Interrupted, JobFailed, Outcome, Removed
from sense_plugin.export.storage import ExportQuery, JobStore
from sense_plugin.timestamps import now_us

log = logging.getLogger(__name__)
#: Writes the manifest of an export that has just finished with this status at this time.
Finalizer = Callable[[Export, Status, int], Awaitable[None]]


class JobBook:
    """Owns the exports, their transitions and their persistence."""

    def __init__(self, store: JobStore, finalize: Finalizer, retention_us: int, *,
                 site_server: int | None = None,
                 localize: Callable[[Export], None] | None = None,
                 clock: Callable[[], int] = now_us) -> None:
        self.store = store
        #: Wall clock in µs since the epoch (unit tests pass a fake one).
        self.clock = clock
        #: On a site: this server's id. Exports are then always read from the store (other
        #: servers change them); only this server's running jobs are live objects here.
        self.site_server = site_server
        self._held = HeldExports(site_server, localize)
        #: Site: exports whose jobs here have ended while others still run elsewhere.
        self.awaiting_finish: set[int] = set()
        #: Changes the store refused (written again by :meth:`save_unsaved`).
        self.unsaved_jobs: dict[tuple[int, int], tuple[Export, Job]] = {}
        self.unsaved_finish: dict[int, Export] = {}
        self._finalize = finalize
        self._retention_us = retention_us
        self._dirs: dict[str, int] = {}
        self._finishing: set[int] = set()
        self.export_counts: Counter[Status] = Counter()
        self.job_counts: Counter[Status] = Counter()
        #: Bumped by every state change written to the store (the status list cache's key).
        self.version = 0
        #: Awaited with each export once its finish is stored (callbacks).
        self.on_finished: list[Callable[[Export], Awaitable[None]]] = []

    # -- opening ---------------------------------------------------------------------------
    async def open(self) -> list[Export]:
        """Open the store; the unfinished exports (to resume), now held in memory."""
        await self.store.open()
        unfinished = [] if self.site_server is not None else await self.store.unfinished()
        self._held.resume(unfinished)
        self._dirs = await self.store.directories()
        exports, jobs = await self.store.count_by_status()
        self.export_counts.update(exports)
        self.job_counts.update(jobs)
        return unfinished

    async def close(self) -> None:
        await self.store.close()

    # -- reading ---------------------------------------------------------------------------
    def active(self) -> list[Export]:
        """The unfinished exports, oldest first."""
        return self._held.active()

    def active_export(self, export_id: int) -> Export:
        """An unfinished export (a running job's)."""
        return self._held.active_export(export_id)

    def pending_owners(self, pending: Iterable[tuple[int, int]]) -> list[str]:
        return self._held.pending_owners(pending)

    def directories(self) -> dict[str, int]:
        return self._dirs

    async def get(self, export_id: int) -> Export | None:
        if self.site_server is not None:
            stored = await self.store.get(export_id)
            return None if stored is None else self._held.live(stored)
        export = self._held.find(export_id)
        if export is not None:
            return export
        export = await self.store.get(export_id)
        if export is not None:
            return self._held.live(export)
        return None

    async def page(self, query: ExportQuery) -> tuple[list[Export], int]:
        exports, total = await self.store.page(query)
        return [self._held.live(e) for e in exports], total

    async def expiring(self, at_us: int) -> list[Export]:
        return [self._held.live(e) for e in await self.store.expiring(at_us)]

    async def finished_before(self, at_us: int) -> list[Export]:
        return [self._held.live(e) for e in await self.store.finished_before(at_us)]

    def adopt(self, stored: Export) -> Export:
        """Site: a stored export one of whose jobs this server runs now (kept while it runs)."""
        return self._held.adopt(stored)

    def _retire(self, export: Export) -> None:
        """Site: forget an export here once this server's jobs of it have all ended."""
        if self._held.retire(export) and export.finished_us is None:
            self.awaiting_finish.add(export.export_id)

    # -- export transitions ----------------------------------------------------------------
    async def add(self, export: Export) -> None:
        """A new export and its PENDING jobs, stored in one transaction."""
        await self.store.insert(export)
        self._held.add(export)
        self._dirs[str(export.directory)] = export.export_id
        self.export_counts[export.status] += 1
        self.job_counts.update(j.status for j in export.jobs)
        self.version += 1

    async def finish_if_done(self, export: Export) -> None:
        """Once every job is terminal: the manifest, then finish time and deadline stamped."""
        if export.finished_us is not None or export.export_id in self._finishing:
            return
        self._finishing.add(export.export_id)
        try:
            if not await self.store.claim_finish(export):
                return
            finished_us = self.clock()
            final = combine_statuses([j.status for j in export.jobs])
            before = export.status
            if final in (Status.COMPLETED, Status.FAILED):
                await self._finalize(export, final, finished_us)
                export.expires_us = finished_us + self._retention_us
            export.finished_us = finished_us
            self._count_export(before, export)
            self.version += 1
            try:
                await self.store.save_export(export)
            except SenseError:
                if self.site_server is not None:  # others must see it: finish again later
                    export.finished_us = export.expires_us = None
                    self.unsaved_finish[export.export_id] = export
                raise
            self.unsaved_finish.pop(export.export_id, None)
            self._held.finished(export)
        finally:
            self._finishing.discard(export.export_id)
        for observer in self.on_finished:
            await observer(export)

    async def save_unsaved(self) -> None:
        """Write again what a failing store refused (a site's database restarted): the
        jobs' last states, then the finish of the exports they completed."""
        for key, (export, job) in list(self.unsaved_jobs.items()):
            await self.store.save_job(export, job)
            self.unsaved_jobs.pop(key, None)
            await self.finish_if_done(export)
            self._retire(export)
        for export in list(self.unsaved_finish.values()):
            await self.finish_if_done(export)

    async def expire(self, export: Export) -> None:
        """Retention took the files: COMPLETED and FAILED jobs become EXPIRED."""
        for job in export.jobs:
            if job.status in (Status.COMPLETED, Status.FAILED):
                await self._set(export, job, Status.EXPIRED)

    async def purge(self, export_ids: list[int]) -> None:
        """Forget finished exports for good (history retention)."""
        gone = [await self.get(i) for i in export_ids]
        await self.store.delete(export_ids)
        for export in gone:
            if export is None:
                continue
            self._held.forget(export.export_id)
            self._dirs.pop(str(export.directory), None)
            self.export_counts[export.status] -= 1
            self.job_counts.subtract(j.status for j in export.jobs)
        self.version += 1

    # -- job transitions -------------------------------------------------------------------
    async def start(self, job: Job, *, resumed: bool = False) -> None:
        """SYNCING: a worker (or, for a live job, the follower) has taken the job.

        ``resumed``: a live job continuing into its cut keeps its start time and progress.
        """
        job.started_us = job.started_us if resumed and job.started_us else self.clock()
        if not resumed:
            job.progress = 0
        await self._set(self.active_export(job.export_id), job, Status.SYNCING)

    def report(self, job: Job, progress: int, bytes_written: int, bandwidth_kbps: int) -> None:
        """Figures of a running job (memory only: they move too often to be written)."""
        job.progress = max(job.progress, min(99, progress))
        job.bytes_written = bytes_written
        job.bandwidth_kbps = bandwidth_kbps

    def report_rate(self, job: Job, bandwidth_kbps: int) -> None:
        job.bandwidth_kbps = bandwidth_kbps

    async def hand_over(self, job: Job) -> None:
        """PENDING again, progress kept: a live job whose recording is complete waits for a
        worker to cut it."""
        await self._set(self.active_export(job.export_id), job, Status.PENDING)

    async def requeue(self, job: Job) -> None:
        """PENDING from the start: interrupted by a shutdown or crash, it runs again."""
        job.progress, job.bytes_written, job.bandwidth_kbps = 0, 0, 0
        job.finished_us = None
        await self._set(self.active_export(job.export_id), job, Status.PENDING)

    async def record(self, job: Job, outcome: Outcome) -> None:
        """What a run of ``job`` came to (its one result record): the job's next status."""
        match outcome:
            case Completed():
                await self.complete(job, outcome)
            case JobFailed():
                await self.fail(job, outcome.code, outcome.description)
            case Interrupted():
                await self.requeue(job)
            case Removed():
                await self.remove(job)
            case _:
                assert_never(outcome)

    async def complete(self, job: Job, completed: Completed) -> None:
        """COMPLETED with its file (or parts); a stop may have ended its range early."""
        files = completed.files
        job.parts = files if completed.split else ()
        job.description = completed.note
        job.file = files[0]
        if completed.stopped_us is not None:
            job.stopped, job.end_us = True, completed.stopped_us
        job.bytes_written = sum(f.size_bytes for f in files)
        job.bandwidth_kbps = completed.bandwidth_kbps
        job.progress = 100
        await self._end(job, Status.COMPLETED)

    async def fail(self, job: Job, code: int, description: str) -> None:
        job.errorcode, job.description = code, description
        log.info("export %s device %s failed: errorcode %d: %s", job.export_id, job.device_id,
                 code, description)
        await self._end(job, Status.FAILED)

    async def remove(self, job: Job, export: Export | None = None) -> None:
        """REMOVED: deleted by ``action=remove``, or stopped before it wrote anything."""
        await self._end(job, Status.REMOVED, export)

    async def remove_all(self, export: Export) -> None:
        """``action=remove``: every job not REMOVED yet becomes REMOVED (none may run)."""
        for job in export.jobs:
            if job.status is not Status.REMOVED:
                job.finished_us = job.finished_us or self.clock()
                await self._set(export, job, Status.REMOVED)
        await self.finish_if_done(export)

    async def _end(self, job: Job, status: Status, export: Export | None = None) -> None:
        export = export or self.active_export(job.export_id)
        job.finished_us = self.clock()
        try:
            await self._set(export, job, status)
        finally:  # even when the store failed: the export's state in memory is right
            await self.finish_if_done(export)
            self._retire(export)

    async def _set(self, export: Export, job: Job, status: Status) -> None:
        before_export, before_job = export.status, job.status
        job.status = status
        self._count_export(before_export, export)
        self.job_counts[before_job] -= 1
        self.job_counts[status] += 1
        self.version += 1
        try:
            await self.store.save_job(export, job)
        except SenseError:
            self.unsaved_jobs[job.key] = (export, job)
            raise
        self.unsaved_jobs.pop(job.key, None)

    def _count_export(self, before: Status, export: Export) -> None:
        after = export.status
        if after is not before:
            self.export_counts[before] -= 1
            self.export_counts[after] += 1

