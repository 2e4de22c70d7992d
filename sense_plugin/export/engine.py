"""The export engine: durable admission and the commands on exports.

The :class:`~sense_plugin.export.book.JobBook` holds every export and makes (and persists)
every status change; the :class:`~sense_plugin.export.dispatch.JobDispatcher` runs queued
jobs on worker processes; the :class:`~sense_plugin.export.live.LiveFollower` holds live jobs
until their recording is complete; keepalive and retention stop and expire what they must.
On a site of several servers, the :class:`~sense_plugin.export.siterole.SiteRole` runs this
server's part of the site's exports.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Executor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from sense_plugin import safefs, signing
from sense_plugin.archive.service import Archive
from sense_plugin.config import Config
from sense_plugin.errors import InvalidExportIdError, OutOfRangeError, SenseError
from sense_plugin.export import admission, files
from sense_plugin.export.book import JobBook
from sense_plugin.export.custody import Custody
from sense_plugin.export.custodydb import SqliteCustodyStore
from sense_plugin.export.dispatch import JobDispatcher
from sense_plugin.export.keepalive import KeepAlive
from sense_plugin.export.localstore import STORE_FILE, LocalJobStore
from sense_plugin.export.manifest import MANIFEST_NAME, write_manifest
from sense_plugin.export.model import Export, ExportRequest, Job, Status
from sense_plugin.export.retention import ExportRetention
from sense_plugin.export.siterole import SiteRole, localize
from sense_plugin.export.storage import ExportQuery, SiteStore
from sense_plugin.outputpaths import resolve_export_dir
from sense_plugin.signing import KEY_FILE
from sense_plugin.timestamps import format_timestamp, now_us

log = logging.getLogger(__name__)
T = TypeVar("T")


class ExportEngine:
    """Owns every export: create, remove, stop, retry, query; runs device jobs on workers."""

    def __init__(self, config: Config, archive: Archive, executor: Executor,
                 site_store: SiteStore | None = None) -> None:
        """The job store is SQLite in the data directory; with ``site_store``, this is one
        server of a site sharing that store, whose jobs arrive through the site's queue
        (:meth:`~sense_plugin.export.siterole.SiteRole.run_device_job` of :attr:`site_role`)
        instead of the local one."""
        self._config = config
        self._io = executor
        self._roots = config.server.export_roots
        hours = config.export.export_retention_hours
        site = site_store is not None
        self.book = JobBook(site_store or LocalJobStore(config), self._write_manifest,
                            int(hours * 3600 * 1_000_000),
                            site_server=config.server.server_id if site else None,
                            localize=partial(localize, self._roots) if site else None)
        self._jobs = JobDispatcher(config, archive, self.book, executor)
        self._keepalive = KeepAlive(self.book, lambda i: self.stop(i, "", True), shared=site)
        #: On a site: this server's part in the site's exports; ``None`` on a single server.
        self.site_role = None if site_store is None else SiteRole(
            config, self.book, site_store, self._jobs, self.run_io, self._write_manifest,
            self.stop_downloads, self._keepalive)
        #: Audit trail, holds and callbacks (docs/custody.rst).
        self.custody = Custody(config, site_store.custody_store() if site_store is not None
                               else SqliteCustodyStore(config.server.data_dir / STORE_FILE),
                               archive.pins)
        self.book.on_finished.append(self.custody.finished)
        self._retention = ExportRetention(self.book, self, config.export.retention_sweep_s,
                                          config.export.history_days, self.custody)
        self._retries: dict[int, asyncio.Future[Export]] = {}  # old id → its one retry
        self._download_stops: dict[int, asyncio.Event] = {}
        self.signer: signing.Signer  # the manifest signing key, loaded by start()

    @property
    def version(self) -> int:
        """Bumped by every persisted state change (the status list cache's key)."""
        return self.book.version + self.custody.holds.version

    @property
    def roots(self) -> tuple[Path, ...]:
        return self._roots

    @property
    def on_job_finished(self) -> list[Callable[[Job], None]]:
        """Called with each job a worker has finished with (observers: metrics)."""
        return self._jobs.on_job_finished

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the store, requeue unfinished jobs, start the workers and dispatchers.

        A damaged store stops the server (exit 2, naming it); a job that was running when
        the server stopped starts again from the beginning.
        """
        data_dir = self._config.server.data_dir
        key_path, cluster = self._config.evidence.signing_key, self._config.cluster
        if key_path is None and cluster is not None:  # one key for the whole site
            self.signer = await self.run_io(signing.site_signer, cluster.site_secret)
        else:
            self.signer = await self.run_io(signing.load_or_create,
                                            key_path or data_dir / KEY_FILE, key_path is None)
        unfinished = await self.book.open()
        await self.custody.open(self.book.get)
        if self.site_role is not None:
            await self.site_role.resume_jobs()
        for export in unfinished:
            await self.run_io(files.ensure_directory, export, self._roots)
            await self._jobs.resume(export)  # a job interrupted by a crash starts again
            await self.book.finish_if_done(export)  # finished before a crash stamped it
        unfinished_runs = [e for e in await self.book.finished_before(now_us())
                           if files.needs_tidying(e)]  # a killed worker's files
        await self.run_io(files.tidy_finished, unfinished_runs, self._roots)
        log.info("export store %s: %d unfinished exports resumed", self.book.store.description,
                 len(unfinished))
        await self._jobs.start()
        self._retention.start()
        self._keepalive.start()

    async def close(self) -> None:
        """Stop dispatching, interrupt running jobs (they restart next time), stop workers."""
        await self._retention.close()
        await self._keepalive.close()
        self._jobs.stop_starting()
        await self._jobs.close()
        await self.custody.close()
        await self.book.close()

    # -- commands --------------------------------------------------------------------------
    async def create(self, request: ExportRequest, owner: str,
                     retried_from: int | None = None) -> Export:
        """Admit an export (all or nothing) and queue one job per device.

        Its directory is created exclusively here, so a FAILED export has one for its
        manifest and no two exports ever share a directory.
        """
        admission.check_unique_names(request, self._config)
        admission.check_bandwidth(request, self._config)
        live_owners = self.book.pending_owners(self._jobs.live_unfinished())
        admission.check_live(live_owners, owner, request, self._config)
        admission.check_queue([*self.book.pending_owners(self._jobs.pending), *live_owners],
                              owner, len(request.devices), self._config)
        out_base = await self.run_io(resolve_export_dir, request.path, self._roots)
        admission.check_not_nested(out_base, self.book.directories())
        export = Export(
            export_id=await self.book.store.new_id(), owner=owner, created_us=now_us(),
            path=request.path, out_base=str(out_base), fmt=request.fmt, name=request.name,
            bandwidth_limit_kbps=request.bandwidth_kbps, retried_from=retried_from,
            options=request.options,
        )
        for index, device in enumerate(request.devices):
            configured = self._config.device(device.device_id)
            export.jobs.append(Job(
                export_id=export.export_id, index=index, server_id=device.server_id,
                device_id=device.device_id,
                device_name=device.name or (configured.name if configured
                                            else str(device.device_id)),
                start_us=device.start_us, end_us=device.end_us,
            ))
        await self.run_io(safefs.make_export_dir, export.directory, self._roots)
        try:
            await self.book.add(export)
        except BaseException:
            await self.run_io(safefs.remove_empty_dirs, export.directory, self._roots)
            raise
        await self.custody.created(export)
        if self.site_role is None:  # else queued on its server's queue (cluster/sitestore.py)
            for job in export.jobs:
                self._jobs.queue(export, job)
        log.info("export %s created by %s: %s into %s%s", export.export_id, owner or "-",
                 ", ".join(f"device {j.device_id} {format_timestamp(j.start_us)} to "
                           f"{format_timestamp(j.end_us)}" for j in export.jobs),
                 export.directory, f" (retry of {retried_from})" if retried_from else "")
        return export

    async def remove(self, export_id: int, user_name: str, is_admin: bool) -> Export:
        """Cancel what waits or runs, delete what was written; the export becomes REMOVED."""
        export = await self.get(export_id, user_name, is_admin)
        was_finished = await self.custody.removing(export)  # -22 while held
        # each run here ends REMOVED; the other jobs are marked so
        await asyncio.gather(*(self._jobs.cancel(job) for job in export.jobs))
        await self.book.remove_all(export)
        self.stop_downloads(export_id)
        await self.run_io(files.remove_export_files, export, self._roots)
        await self.custody.removed(export, was_finished)
        log.info("export %s removed by %s", export_id, user_name or "-")
        return export

    async def stop(self, export_id: int, user_name: str, is_admin: bool) -> Export:
        """Finish running devices now keeping their files; queued devices become REMOVED.

        COMPLETED when a device produced a file, else REMOVED; -22 for a finished export.
        """
        export = await self.get(export_id, user_name, is_admin)
        if export.finished_us is not None or all(j.terminal for j in export.jobs):
            raise OutOfRangeError(f"export {export_id} is {export.status}; only PENDING or "
                                  "SYNCING exports can be stopped")
        if export.stopping:
            raise OutOfRangeError(f"export {export_id} is being stopped already")
        export.stopping = True
        await self.custody.record("stop", export_id)
        for job in export.jobs:  # queued elsewhere on a site, or not queued at all
            if job.status is Status.PENDING and not self._jobs.has(job):
                await self.book.remove(job, export)
        await asyncio.gather(*(self._end(export, j) for j in export.jobs
                               if j.status is Status.SYNCING or self._jobs.has(j)))
        await self.book.finish_if_done(export)
        log.info("export %s stopped by %s", export_id, user_name or "-")
        return export

    async def retry(self, export_id: int, user_name: str, is_admin: bool) -> Export:
        """A new export with the parameters of a FAILED, REMOVED or EXPIRED one.

        One retry per export: asking again (even in parallel) answers the same new export.
        """
        old = await self.get(export_id, user_name, is_admin)
        if old.status not in (Status.FAILED, Status.REMOVED, Status.EXPIRED):
            raise OutOfRangeError(
                f"export {export_id} is {old.status}; only FAILED, REMOVED or EXPIRED exports "
                "can be retried"
            )
        existing = self._retries.get(export_id)
        if existing is not None:
            return await asyncio.shield(existing)
        future: asyncio.Future[Export] = asyncio.get_running_loop().create_future()
        self._retries[export_id] = future
        try:
            done, _ = await self.book.page(ExportQuery(retried_from=export_id, limit=1))
            new = done[0] if done else await self.create(old.request(), old.owner,
                                                         retried_from=export_id)
            await self.custody.record("retry", export_id, f"retried as {new.export_id}")
        except BaseException as exc:
            del self._retries[export_id]  # a refused retry (queue full) may be asked again
            future.set_exception(exc)
            future.exception()  # retrieved: waiting callers get it, nobody else
            raise
        future.set_result(new)
        return new

    def stop_downloads(self, export_id: int) -> None:
        """Stop the running downloads of an export (removed or expired)."""
        stop = self._download_stops.pop(export_id, None)
        if stop is not None:
            stop.set()

    def download_stop(self, export_id: int) -> asyncio.Event:
        """Set when the export is removed: its running downloads stop."""
        return self._download_stops.setdefault(export_id, asyncio.Event())

    async def get(self, export_id: int, user_name: str, is_admin: bool) -> Export:
        """The export if it exists and the user may see it; -57 otherwise (same answer)."""
        export = await self.book.get(export_id)
        if export is None or not (is_admin or export.owner == user_name):
            raise InvalidExportIdError(f"exportid {export_id} is not known")
        self._keepalive.touch(export)  # status by id, downloads, actions
        return self.custody.holds.mark(export)

    async def page(self, user_name: str, is_admin: bool, query: ExportQuery) \
            -> tuple[list[Export], int]:
        """The exports the user may see that ``query`` selects, and how many match (a
        listing counts as keepalive for the unfinished ones)."""
        exports, total = await self.book.page(
            ExportQuery(owner=None if is_admin else user_name, statuses=query.statuses,
                        newest_first=query.newest_first, offset=query.offset,
                        limit=query.limit))
        self.touch(exports)
        for export in exports:
            self.custody.holds.mark(export)
        return exports, total

    def touch(self, exports: Iterable[Export]) -> None:
        """Requests for these exports (a status list): keepalive for the unfinished ones."""
        for export in exports:
            self._keepalive.touch(export)

    async def run_io(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, func, *args)

    async def _write_manifest(self, export: Export, final: Status, finished_us: int) -> None:
        try:
            # on a site, a server that ran none of the export's jobs finishes it too
            if self.site_role is not None:
                await self.site_role.hold_directory(export)
            records = await self.custody.audit_of(export.export_id)
            await self.run_io(write_manifest, export, final, finished_us, self._roots,
                              self.signer, records)
        except (OSError, SenseError) as exc:
            log.error("export %s: cannot write %s: %s", export.export_id, MANIFEST_NAME,
                      getattr(exc, "description", exc))

    def _end(self, export: Export, job: Job) -> Awaitable[None]:
        """Finish a job keeping its file, wherever it runs (a queued one is REMOVED)."""
        if self.site_role is not None and not self.site_role.is_mine(job):
            return self.site_role.stop_elsewhere(export, job)
        return self._jobs.finish(job)
