"""The single-server job store: SQLite in the data directory, on a thread of its own.

Implements :class:`~sense_plugin.export.storage.JobStore` around the synchronous
:class:`~sense_plugin.export.store.ExportStore`. Export ids never go back: at open they
continue above the store's sequence, the high-water mark file and every numbered export
directory, and each new id is written to the mark file before it is used. Finished exports a
missing or emptied store lacks are rebuilt from their manifests at open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sense_plugin.config import Config
from sense_plugin.export import ids, rebuild
from sense_plugin.export.model import Export, Job, Status
from sense_plugin.export.storage import ExportQuery, JobStore
from sense_plugin.export.store import ExportStore

T = TypeVar("T")
STORE_FILE = "exports.sqlite3"


class LocalJobStore:
    """SQLite calls on one dedicated thread: the event loop never waits on the database."""

    def __init__(self, config: Config) -> None:
        self._data_dir = config.server.data_dir
        self._roots = config.server.export_roots
        self._retention_hours = config.export.export_retention_hours
        self.path: Path = self._data_dir / STORE_FILE
        self.description = f"SQLite {self.path}"
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sense-store")
        #: Queries run on their own thread and connection: never behind an fsync'd write.
        self._read_thread = ThreadPoolExecutor(1, thread_name_prefix="sense-store-read")
        self._db: ExportStore | None = None
        self._reader: ExportStore | None = None
        self._last_id = 0

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, func, *args)

    async def _read(self, name: str, *args: Any) -> Any:
        """A query on the reader connection (``name``: an ExportStore query method)."""
        assert self._reader is not None, "the store is not open"
        func = getattr(self._reader, name)
        return await asyncio.get_running_loop().run_in_executor(self._read_thread, func, *args)

    @property
    def db(self) -> ExportStore:
        assert self._db is not None, "the store is not open"
        return self._db

    async def open(self) -> None:
        self._db = await self._run(ExportStore, self.path)
        self._last_id = await self._run(rebuild.recover, self._db, self._roots, self._data_dir,
                                        self._retention_hours)
        self._reader = await asyncio.get_running_loop().run_in_executor(
            self._read_thread, lambda: ExportStore(self.path, reader=True))

    async def close(self) -> None:
        if self._reader is not None:
            await self._read("close")
            self._reader = None
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._read_thread.shutdown(wait=True)
        self._thread.shutdown(wait=True)

    async def new_id(self) -> int:
        self._last_id += 1
        export_id = self._last_id
        # on the store thread: one writer at a time, in id order
        await self._run(ids.write_high_water, self._data_dir, export_id)
        return export_id

    async def insert(self, export: Export) -> None:
        await self._run(self.db.insert, export)

    async def save_job(self, export: Export, job: Job) -> None:
        await self._run(self.db.update_job, job, export.status)

    async def claim_finish(self, export: Export) -> bool:
        return export.finished_us is None and all(j.terminal for j in export.jobs)

    async def save_export(self, export: Export) -> None:
        await self._run(self.db.update_export, export)

    async def delete(self, export_ids: Sequence[int]) -> None:
        await self._run(self.db.delete, list(export_ids))

    async def get(self, export_id: int) -> Export | None:
        found: Export | None = await self._read("get", export_id)
        return found

    async def unfinished(self) -> list[Export]:
        return await self._run(self.db.unfinished)

    async def page(self, query: ExportQuery) -> tuple[list[Export], int]:
        found: tuple[list[Export], int] = await self._read("page", query)
        return found

    async def expiring(self, at_us: int) -> list[Export]:
        return await self._run(self.db.expiring, at_us)

    async def finished_before(self, at_us: int) -> list[Export]:
        return await self._run(self.db.finished_before, at_us)

    async def count_by_status(self) -> tuple[dict[Status, int], dict[Status, int]]:
        return await self._run(self.db.count_by_status)

    async def directories(self) -> dict[str, int]:
        return await self._run(self.db.directories)


_IS_A_JOB_STORE: type[JobStore] = LocalJobStore  # checked by mypy
