"""The engine's site role: this server's part in the exports of a site of several servers.

On a site the servers share one job store (PostgreSQL) and each device job belongs to one of
them. A job arrives through its server's queue (:meth:`SiteRole.run_device_job`); what other
servers ask of it (remove, stop) and the manifests of exports they finish reach it through
the site's per-second upkeep (``cluster/sitejobs.py``), which calls the methods here.

A server records a holding before it writes into an export's directory; once the export is
removed or expires on any server, each holder deletes its own files of it
(:meth:`SiteRole.let_go`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath

from sense_plugin.config import Config
from sense_plugin.errors import SenseError
from sense_plugin.export import files
from sense_plugin.export.book import Finalizer, JobBook
from sense_plugin.export.dispatch import JobDispatcher
from sense_plugin.export.jobrun import Ask, JobRun
from sense_plugin.export.keepalive import KeepAlive
from sense_plugin.export.model import Export, Job, Status
from sense_plugin.export.storage import SiteStore
from sense_plugin.outputpaths import UNNAMED_FOLDER

log = logging.getLogger(__name__)
#: How long a stop of a job running on another server waits for it to end.
STOP_ELSEWHERE_S = 30.0
#: Runs a blocking function on the engine's I/O executor.
RunIo = Callable[..., Awaitable[object]]


def localize(roots: tuple[Path, ...], export: Export) -> None:
    """A site's export read from the store: its directory under this server's roots."""
    if not PurePosixPath(export.path).is_absolute():
        export.out_base = str(roots[0] / (export.path or UNNAMED_FOLDER))


class SiteRole:
    """This server's jobs of the site's exports, and stops asked across servers."""

    def __init__(self, config: Config, book: JobBook, store: SiteStore, jobs: JobDispatcher,
                 run_io: RunIo, write_manifest: Finalizer,
                 stop_downloads: Callable[[int], None], keepalive: KeepAlive) -> None:
        """``jobs``: the engine's dispatcher; ``write_manifest``: the engine's finalizer."""
        self.server_id = config.server.server_id
        self.book = book
        self.store = store
        self._stop_downloads = stop_downloads
        self._keepalive = keepalive
        self._roots = config.server.export_roots
        self._jobs = jobs
        self._run_io = run_io
        self._write_manifest = write_manifest

    def is_mine(self, job: Job) -> bool:
        """Whether ``job`` runs on this server."""
        return job.server_id == self.server_id

    async def resume_jobs(self) -> None:
        """This server's jobs that were waiting or running when it stopped."""
        for stored in await self.book.store.unfinished():
            if any(self.is_mine(j) and not j.terminal for j in stored.jobs):
                export = self.book.adopt(stored)
                for job in export.jobs:
                    if self.is_mine(job) and not job.terminal:
                        await self._queue_mine(export, job)

    async def run_device_job(self, export_id: int, index: int) -> None:
        """Run this server's device job (from its queue); return once it settled.

        A job found SYNCING was running when this server stopped: it starts again from the
        beginning, its partial file deleted.
        """
        stored = await self.book.store.get(export_id)
        if stored is None or index >= len(stored.jobs):
            log.info("export %s device job %d: no longer stored; skipped", export_id, index)
            return
        export = self.book.adopt(stored)
        job = export.jobs[index]
        if job.terminal or not self.is_mine(job):
            return
        if not self._jobs.has(job):  # else resumed at start already: wait for it
            await self._queue_mine(export, job)
        await self._jobs.until_settled(job)

    async def hold_directory(self, export: Export) -> None:
        """The export's directory here, about to be written into, recorded as held.

        The directory is written all the same when the store cannot record it (a manifest
        must not be lost to a database away), only not deleted by a remove elsewhere."""
        try:
            await self.store.hold(export.export_id)
        except SenseError as exc:
            log.warning("export %s: cannot record that this server holds files of it (%s); "
                        "a remove or expiry on another server will not delete them here",
                        export.export_id, exc.description)
        await self._run_io(files.ensure_directory, export, self._roots)

    async def let_go(self) -> list[int]:
        """Delete this server's files of exports removed or expired on any server; the ids.

        An export this server still runs a job of waits for the next call (its cut is being
        cancelled). One purged from the store while this server was away is only let go:
        which files it had is no longer known, so they stay (logged).
        """
        released, vanished = await self.store.released()
        busy = {e.export_id for e in self.book.active()}
        done = []
        for export in released:
            if export.export_id in busy or any(self._jobs.has(j) for j in export.jobs):
                continue
            localize(self._roots, export)
            self._stop_downloads(export.export_id)
            await self._run_io(files.remove_export_files, export, self._roots)
            log.info("export %s is %s on the site: its files here are deleted",
                     export.export_id, export.status)
            done.append(export.export_id)
        for export_id in vanished:
            log.warning("export %s was purged from the site's job store before this server "
                        "deleted its files of it; they stay in its export root", export_id)
        await self.store.let_go([*done, *vanished])
        return done

    async def share_keepalive(self) -> None:
        """Requests seen here to the store; those seen anywhere to the keepalive of the
        exports this server takes part in (any of them may stop a forgotten export)."""
        watched = [e.export_id for e in self.book.active() if e.options.keepalive_s > 0]
        touched = self._keepalive.take_touched()
        if not watched and not touched:
            return
        try:
            seen = await self.store.seen(touched, watched)
        except SenseError:
            self._keepalive.keep_touched(touched)
            raise
        for export_id, at_us in seen.items():
            self._keepalive.seen_at(export_id, at_us)

    async def _queue_mine(self, export: Export, job: Job) -> None:
        await self.hold_directory(export)
        if job.status is Status.SYNCING:
            log.info("export %s device %s: interrupted by a restart, queued again",
                     export.export_id, job.device_id)
            await self.book.requeue(job)
            await self._run_io(files.remove_partial, export, job, self._roots)
        self._jobs.enqueue(job)

    async def stop_elsewhere(self, export: Export, job: Job) -> None:
        """Ask the server running ``job`` to stop it; wait (bounded) until it has ended."""
        await self.store.ask_stop(export.export_id, job.index)
        for _ in range(int(STOP_ELSEWHERE_S / 0.2)):
            stored = await self.book.store.get(export.export_id)
            if stored is None or stored.jobs[job.index].terminal:
                return
            await asyncio.sleep(0.2)

    def ask_here(self, export: Export, job: Job, cancel: bool) -> Awaitable[None] | None:
        """What another server asked of a job running here: removed (``cancel``: stop it,
        delete its files) or stopped (end it, keep it). Asked once: None when its run here
        was asked that already (or it has none)."""
        run = self._jobs.run_of(job)
        what = Ask.CANCEL if cancel else Ask.FINISH
        if run is None or (run.site_asked is not None and run.site_asked >= what):
            return None
        run.site_asked = what
        run.request(what)
        return self._cancel_here(export, run) if cancel else run.ask(what)

    async def _cancel_here(self, export: Export, run: JobRun) -> None:
        await run.ask(Ask.CANCEL)
        await self._run_io(files.remove_export_files, export, self._roots)

    async def write_copy_of_manifest(self, export: Export) -> None:
        """The manifest of an export another server finished, beside this server's files
        of it."""
        final = export.status
        if export.finished_us is not None and final in (Status.COMPLETED, Status.FAILED):
            await self._write_manifest(export, final, export.finished_us)
