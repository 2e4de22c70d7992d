"""Keepalive (SPEC §10): an export nobody polls or downloads within ``keepalive`` s is stopped.

A status request that includes the export (by id or in a list) or a download of it counts;
the engine reports them through :meth:`KeepAlive.touch`. The sweep stops the export as
``action=stop`` does (what was written is kept).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from sense_plugin.errors import SenseError
from sense_plugin.export.book import JobBook

log = logging.getLogger(__name__)
SWEEP_S = 0.5


class KeepAlive:
    """Last request time per export (monotonic) and the sweep that stops forgotten ones."""

    def __init__(self, book: JobBook, stop: Callable[[int], Awaitable[object]]) -> None:
        self._book = book
        self._stop_export = stop
        self._seen: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._stops: set[asyncio.Task[None]] = set()  # a live stop waits for its cut

    def touch(self, export_id: int) -> None:
        self._seen[export_id] = time.monotonic()

    def start(self) -> None:
        self._task = asyncio.create_task(self._sweep(), name="export-keepalive")

    async def close(self) -> None:
        for task in (self._task, *self._stops):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (self._task, *self._stops) if t is not None),
                             return_exceptions=True)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            now = time.monotonic()
            for export in self._book.active():
                limit = export.options.keepalive_s
                if limit <= 0 or export.finished_us is not None:
                    self._seen.pop(export.export_id, None)
                    continue
                seen = self._seen.setdefault(export.export_id, now)
                if now - seen < limit or export.stopping:
                    continue
                log.info("export %s: no status request or download for %d s (keepalive); "
                         "stopping it", export.export_id, limit)
                export.stopping = True  # until the stop task has taken over
                task = asyncio.create_task(self._stop(export.export_id))
                self._stops.add(task)
                task.add_done_callback(self._stops.discard)

    async def _stop(self, export_id: int) -> None:
        export = await self._book.get(export_id)
        if export is not None:
            export.stopping = False
        try:
            await self._stop_export(export_id)
        except SenseError as exc:  # finished meanwhile
            log.debug("keepalive stop of export %s: %s", export_id, exc)
