"""Export retention: expire files past their stored deadline, purge records past history_days."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from sense_plugin.export import files
from sense_plugin.export.model import Export, Status
from sense_plugin.timestamps import now_us

if TYPE_CHECKING:
    from sense_plugin.export.engine import ExportEngine

log = logging.getLogger(__name__)
_DAY_US = 86_400 * 1_000_000


class ExportRetention:
    """A periodic sweep owned by the engine; deadlines live in the store, so restarts are safe.

    COMPLETED or FAILED exports whose ``expires_us`` has passed lose their files (deleted in
    the I/O executor) and become EXPIRED (every device job, persisted). Finished exports older
    than ``history_days`` are purged from the store.
    """

    def __init__(self, engine: ExportEngine, interval_s: float, history_days: float) -> None:
        self._engine = engine
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
        purged = []
        for export in self._engine.all_exports():
            if _expiring(export, at_us):
                await self._expire(export)
                expired.append(export.export_id)
            if export.finished_us is not None and \
                    export.finished_us + self._history_us <= at_us and \
                    export.status in (Status.EXPIRED, Status.REMOVED, Status.FAILED,
                                      Status.COMPLETED):
                purged.append(export.export_id)
        if purged:
            for export_id in purged:
                await self._engine.run_io(files.remove_export_files,
                                          self._engine.export_by_id(export_id),
                                          self._engine.roots)
            await self._engine.purge(purged)
        if expired or purged:
            log.info("export retention: %d expired, %d purged", len(expired), len(purged))
        return expired, purged

    async def _expire(self, export: Export) -> None:
        self._engine.stop_downloads(export.export_id)
        log.info("export %s expired: its files are deleted", export.export_id)
        await self._engine.run_io(files.remove_export_files, export, self._engine.roots)
        for job in export.jobs:
            if job.status in (Status.COMPLETED, Status.FAILED):
                job.status = Status.EXPIRED
                await self._engine.save_job(job)


def _expiring(export: Export, at_us: int) -> bool:
    return (export.expires_us is not None and export.expires_us <= at_us
            and export.status in (Status.COMPLETED, Status.FAILED))
