"""The export engine: durable admission, a FIFO queue, a bounded pool of worker processes.

Reads (status, lists) are answered from memory; every state change is written through to
the SQLite store on a dedicated thread before it is acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sense_plugin.archive.service import Archive
from sense_plugin.config import Config
from sense_plugin.errors import InvalidExportIdError, OutOfRangeError, SenseError
from sense_plugin.evidence import signing
from sense_plugin.evidence.signing import KEY_FILE
from sense_plugin.export import admission, files, ids, rebuild, safefs
from sense_plugin.export.keepalive import KeepAlive
from sense_plugin.export.live import LiveFollower
from sense_plugin.export.manifest import MANIFEST_NAME, write_manifest
from sense_plugin.export.model import Export, ExportRequest, Job, Status, combine_statuses
from sense_plugin.export.paths import resolve_export_dir
from sense_plugin.export.pool import WorkerPool
from sense_plugin.export.retention import ExportRetention
from sense_plugin.export.runner import JobRunner
from sense_plugin.export.store import ExportStore
from sense_plugin.timestamps import format_timestamp, now_us

log = logging.getLogger(__name__)
T = TypeVar("T")
STORE_FILE = "exports.sqlite3"


class ExportEngine:
    """Owns every export: create, remove, retry, query; runs device jobs in worker processes."""

    def __init__(self, config: Config, archive: Archive, executor: Executor) -> None:
        self._config = config
        self._io = executor
        self._store_thread = ThreadPoolExecutor(1, thread_name_prefix="sense-store")
        self._store: ExportStore | None = None
        self._exports: dict[int, Export] = {}
        self._queue: asyncio.Queue[Job] = asyncio.Queue()
        self._pending: set[tuple[int, int]] = set()
        self._pool = WorkerPool(config.export.max_concurrent_jobs)
        self._runner = JobRunner(config, archive, executor, self)
        self._tasks: list[asyncio.Task[None]] = []
        self._finishing: set[int] = set()
        self._retention = ExportRetention(self, config.export.retention_sweep_s,
                                          config.export.history_days)
        #: Called with each job the runner has finished with (observers: metrics).
        self.on_job_finished: list[Callable[[Job], None]] = []
        #: Bumped by every state change the engine persists (the status list cache's key).
        self.version = 0
        self._roots = config.server.export_roots
        self._last_id = 0
        self._dirs: dict[str, int] = {}  # export directory → export id (nesting check)
        self._retries: dict[int, asyncio.Future[Export]] = {}  # old id → its one retry
        self._download_stops: dict[int, asyncio.Event] = {}
        self._keepalive = KeepAlive(self)
        self._live = LiveFollower(config, archive, self)
        self.signer: signing.Signer  # the manifest signing key, loaded by start()

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the store, requeue unfinished jobs, start the workers and dispatchers.

        A damaged store stops the server (exit 2, naming the file); finished exports a
        missing or emptied store lacks are rebuilt from their manifests. Export ids continue
        above the store's, the high-water mark file's and every numbered directory's.
        """
        data_dir = self._config.server.data_dir
        key_path = self._config.evidence.signing_key
        self.signer = await self.run_io(signing.load_or_create, key_path or data_dir / KEY_FILE,
                                        key_path is None)
        self._store = await self._in_store(ExportStore, data_dir / STORE_FILE)
        loaded = await self._in_store(self._store.load_all)
        await self._check_disk(loaded)
        for export in loaded:
            self._remember(export)
            if export.finished_us is None:
                await self.run_io(files.ensure_directory, export, self._roots)
            for job in export.jobs:
                if job.status is Status.SYNCING:  # interrupted by a crash: start again
                    log.info("export %s device %s: interrupted by a restart, queued again",
                             export.export_id, job.device_id)
                    job.status, job.progress, job.bytes_written = Status.PENDING, 0, 0
                    await self.save_job(job)
                    await self.run_io(files.remove_partial, export, job, self._roots)
                if job.status is Status.PENDING:
                    self._enqueue(job)
            await self.finish_if_done(export)  # finished before a crash stamped it
        resumed = sum(1 for e in loaded if e.finished_us is None)
        log.info("export store %s: %d exports, %d unfinished resumed, next id %d",
                 self._store.path, len(loaded), resumed, self._last_id + 1)
        await self._pool.start()
        self._retention.start()
        self._keepalive.start()
        self._tasks = [asyncio.create_task(self._dispatch(), name=f"export-dispatch-{i}")
                       for i in range(self._config.export.max_concurrent_jobs)]

    async def _check_disk(self, loaded: list[Export]) -> None:
        """Rebuild finished exports the store lost from their manifests; set the last id."""
        assert self._store is not None
        self._last_id = await self._in_store(
            rebuild.recover, self._store, loaded, self._roots, self._config.server.data_dir,
            self._config.export.export_retention_hours)

    @property
    def runner(self) -> JobRunner:  # live exports feed their worker (issue 14, export/live.py)
        return self._runner

    async def close(self) -> None:
        """Stop dispatching, interrupt running jobs (they restart next time), stop workers."""
        await self._retention.close()
        await self._keepalive.close()
        self._runner.closing = True
        await self._live.close()
        await self._runner.cancel_all()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._pool.close()
        if self._store is not None:
            await self._in_store(self._store.close)
        self._store_thread.shutdown(wait=True)

    # -- commands --------------------------------------------------------------------------
    async def create(self, request: ExportRequest, owner: str,
                     retried_from: int | None = None) -> Export:
        """Admit an export (all or nothing) and queue one job per device.

        Its directory is created exclusively here, so a FAILED export has one for its
        manifest and no two exports ever share a directory.
        """
        admission.check_unique_names(request, self._config)
        admission.check_queue((self._exports[k[0]].owner for k in self._pending), owner,
                              len(request.devices), self._config)
        out_base = await self.run_io(resolve_export_dir, request.path, self._roots)
        admission.check_not_nested(out_base, self._dirs)
        export = Export(
            export_id=await self._next_id(), owner=owner, created_us=now_us(),
            path=request.path, out_base=str(out_base), fmt=request.fmt, name=request.name,
            bandwidth_limit_kbps=request.bandwidth_kbps, retried_from=retried_from,
            options=request.options,
        )
        for index, device in enumerate(request.devices):
            configured = self._config.device(device.device_id)
            export.jobs.append(Job(
                export_id=export.export_id, index=index, server_id=device.server_id,
                device_id=device.device_id,
                device_name=configured.name if configured else str(device.device_id),
                start_us=device.start_us, end_us=device.end_us,
            ))
        await self.run_io(safefs.make_export_dir, export.directory, self._roots)
        assert self._store is not None
        try:
            await self._in_store(self._store.insert, export)
        except BaseException:
            await self.run_io(safefs.remove_empty_dirs, export.directory, self._roots)
            raise
        self._remember(export)
        self.version += 1
        for job in export.jobs:
            self._enqueue(job)
        log.info("export %s created by %s: %s into %s%s", export.export_id, owner or "-",
                 ", ".join(f"device {j.device_id} {format_timestamp(j.start_us)} to "
                           f"{format_timestamp(j.end_us)}" for j in export.jobs),
                 export.directory, f" (retry of {retried_from})" if retried_from else "")
        return export

    async def _next_id(self) -> int:
        """A new export id, recorded in the high-water mark file before it is used."""
        self._last_id += 1
        export_id = self._last_id
        # on the store thread: one writer at a time, in id order
        await self._in_store(ids.write_high_water, self._config.server.data_dir, export_id)
        return export_id

    def _remember(self, export: Export) -> None:
        self._exports[export.export_id] = export
        self._dirs[str(export.directory)] = export.export_id
        if export.retried_from is not None:
            done: asyncio.Future[Export] = asyncio.get_running_loop().create_future()
            done.set_result(export)
            self._retries.setdefault(export.retried_from, done)

    async def remove(self, export_id: int, user_name: str, is_admin: bool) -> Export:
        """Cancel what waits or runs, delete what was written; the export becomes REMOVED."""
        export = self.get(export_id, user_name, is_admin)
        for job in export.jobs:
            if self._live.follows(job):
                self._live.cancel(job)
            elif job.status is Status.SYNCING:
                await self._runner.cancel(job)
        for job in export.jobs:
            if job.status is not Status.REMOVED:
                self._pending.discard(job.key)
                job.status = Status.REMOVED
                job.finished_us = job.finished_us or now_us()
                await self.save_job(job)
        self.stop_downloads(export_id)
        await self.run_io(files.remove_export_files, export, self._roots)
        await self.finish_if_done(export)
        log.info("export %s removed by %s", export_id, user_name or "-")
        return export

    async def stop(self, export_id: int, user_name: str, is_admin: bool) -> Export:
        """Finish running devices now keeping their files; queued devices become REMOVED.

        COMPLETED when a device produced a file, else REMOVED; -22 for a finished export.
        """
        export = self.get(export_id, user_name, is_admin)
        if export.finished_us is not None or all(j.terminal for j in export.jobs):
            raise OutOfRangeError(f"export {export_id} is {export.status}; only PENDING or "
                                  "SYNCING exports can be stopped")
        if export.stopping:
            raise OutOfRangeError(f"export {export_id} is being stopped already")
        export.stopping = True
        for job in export.jobs:
            if job.status is Status.PENDING:
                self._pending.discard(job.key)
                job.status, job.finished_us = Status.REMOVED, now_us()
                await self.save_job(job)
        await asyncio.gather(*(self._live.stop(j) if self._live.follows(j)
                               else self._runner.finish(j) for j in export.jobs
                               if j.status is Status.SYNCING))
        await self.finish_if_done(export)
        log.info("export %s stopped by %s", export_id, user_name or "-")
        return export

    async def retry(self, export_id: int, user_name: str, is_admin: bool) -> Export:
        """A new export with the parameters of a FAILED, REMOVED or EXPIRED one.

        One retry per export: asking again (even in parallel) answers the same new export.
        """
        old = self.get(export_id, user_name, is_admin)
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
            new = await self.create(old.request(), old.owner, retried_from=export_id)
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

    def get(self, export_id: int, user_name: str, is_admin: bool) -> Export:
        """The export if it exists and the user may see it; -57 otherwise (same answer)."""
        export = self._exports.get(export_id)
        if export is None or not (is_admin or export.owner == user_name):
            raise InvalidExportIdError(f"exportid {export_id} is not known")
        self._keepalive.touch(export_id)  # status by id, downloads, actions
        return export

    def visible(self, user_name: str, is_admin: bool) -> list[Export]:
        """Every export the user may see, oldest first (a listing counts as keepalive)."""
        seen = [e for e in self._exports.values() if is_admin or e.owner == user_name]
        for export in seen:
            if export.finished_us is None:
                self._keepalive.touch(export.export_id)
        return seen

    # -- used by the runner and retention --------------------------------------------------
    async def save_job(self, job: Job) -> None:
        assert self._store is not None
        self.version += 1
        await self._in_store(self._store.update_job, job)

    async def finish_if_done(self, export: Export) -> None:
        """Once every job is terminal: write the manifest, then stamp finish time and deadline."""
        if (any(not j.terminal for j in export.jobs) or export.finished_us is not None
                or export.export_id in self._finishing):
            return
        self._finishing.add(export.export_id)
        try:
            finished_us = now_us()
            final = combine_statuses([j.status for j in export.jobs])
            if final in (Status.COMPLETED, Status.FAILED):
                try:
                    await self.run_io(write_manifest, export, final, finished_us, self._roots,
                                      self.signer)
                except (OSError, SenseError) as exc:
                    log.error("export %s: cannot write %s: %s", export.export_id,
                              MANIFEST_NAME, getattr(exc, "description", exc))
                hours = self._config.export.export_retention_hours
                export.expires_us = finished_us + int(hours * 3600 * 1_000_000)
            export.finished_us = finished_us
            self.version += 1
            assert self._store is not None
            await self._in_store(self._store.update_export, export)
        finally:
            self._finishing.discard(export.export_id)

    @property
    def roots(self) -> tuple[Path, ...]:
        return self._roots

    def all_exports(self) -> list[Export]:
        return list(self._exports.values())

    def export_by_id(self, export_id: int) -> Export:
        return self._exports[export_id]

    async def purge(self, export_ids: list[int]) -> None:
        """Forget finished exports for good (history retention)."""
        assert self._store is not None
        await self._in_store(self._store.delete, export_ids)
        for export_id in export_ids:
            export = self._exports.pop(export_id, None)
            if export is not None:
                self._dirs.pop(str(export.directory), None)
        self.version += 1

    def export_of(self, job: Job) -> Export:
        return self._exports[job.export_id]

    async def run_io(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, func, *args)

    # -- internals -------------------------------------------------------------------------
    async def _in_store(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._store_thread, func, *args)

    def _enqueue(self, job: Job) -> None:
        export = self._exports[job.export_id]
        if export.options.live and not export.options.snapshot and job.end_us > now_us() \
                and not self._live.follows(job):
            self._live.start(job)  # SYNCING at once, queued for its cut at the end
            return
        self._pending.add(job.key)
        self._queue.put_nowait(job)

    async def run_now(self, job: Job) -> None:
        """Cut a live job whose recording has passed its end, on the next free worker."""
        proc = await self._pool.acquire()
        try:
            if job.status is Status.PENDING and not self._runner.closing:
                await self._runner.run(job, proc)
                for hook in self.on_job_finished:
                    hook(job)
        finally:
            self._pool.release(proc)

    async def _dispatch(self) -> None:
        while True:
            job = await self._queue.get()
            if self._runner.closing:
                return
            if job.status is not Status.PENDING or job.key not in self._pending:
                continue
            proc = await self._pool.acquire()
            try:
                if job.status is Status.PENDING and not self._runner.closing:
                    self._pending.discard(job.key)
                    await self._runner.run(job, proc)
                    for hook in self.on_job_finished:
                        hook(job)
            finally:
                self._pool.release(proc)
