"""Export retention: expire files past their stored deadline, purge records past history_days."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from sense_plugin.export import files
from sense_plugin.export.book import JobBook
from sense_plugin.export.custody import Custody
from sense_plugin.export.model import Export
from sense_plugin.timestamps import now_us

log = logging.getLogger(__name__)
_DAY_US = 86_400 * 1_000_000


class Files(Protocol):
    """What retention needs of the engine: its roots, its I/O executor, its downloads."""

    @property
    def roots(self) -> tuple[Path, ...]: ...

    def run_io(self, func: Callable[..., Any], *args: Any) -> Awaitable[Any]: ...

    def stop_downloads(self, export_id: int) -> None: ...


class ExportRetention:
    """A periodic sweep; deadlines live in the store, so restarts are safe.

    COMPLETED or FAILED exports whose ``expires_us`` has passed lose their files (deleted in
    the I/O executor) and become EXPIRED (every device job, persisted). Finished exports older
    than ``history_days`` are purged from the store.
    """

    def __init__(self, book: JobBook, files_of: Files, interval_s: float,
                 history_days: float, custody: Custody | None = None) -> None:
        """``custody``: held exports are neither expired nor purged; expiries are audited."""
        self._book = book
        self._custody = custody
        self._files = files_of
        self._interval_s = interval_s
        self._history_us = int(history_days * _DAY_US)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="export-retention")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.sweep(now_us())
            except Exception:  # a failed sweep is retried next time, never kills the task
                log.exception("export retention sweep failed")
            await asyncio.sleep(self._interval_s)

    async def sweep(self, at_us: int) -> tuple[list[int], list[int]]:
        """One pass at time ``at_us``; returns (expired ids, purged ids)."""
        expired = []
        held = set() if self._custody is None else await self._custody.refresh_holds()
        for export in await self._book.expiring(at_us):
            if export.export_id in held:
                continue  # an evidence hold keeps the files past the deadline
            await self._expire(export)
            expired.append(export.export_id)
        old = [e for e in await self._book.finished_before(at_us - self._history_us)
               if e.export_id not in held]
        for export in old:
            await self._remove_files(export)
        purged = [e.export_id for e in old]
        if purged:
            await self._book.purge(purged)
        if expired or purged:
            log.info("export retention: %d expired, %d purged", len(expired), len(purged))
        return expired, purged

    async def _expire(self, export: Export) -> None:
        self._files.stop_downloads(export.export_id)
        log.info("export %s expired: its files are deleted", export.export_id)
        await self._remove_files(export)
        await self._book.expire(export)
        if self._custody is not None:
            await self._custody.expired(export)

    async def _remove_files(self, export: Export) -> None:
        await self._files.run_io(files.remove_export_files, export, self._files.roots)
