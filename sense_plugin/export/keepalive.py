"""Keepalive (docs/exports.rst): an export nobody polls or downloads within ``keepalive`` s is
stopped.

A status request that includes the export (by id or in a list) or a download of it counts;
the engine reports them through :meth:`KeepAlive.touch`. The sweep stops the export as
``action=stop`` does (what was written is kept). On a site (``shared``), the requests other
servers saw count too: the site's upkeep takes this server's (:meth:`KeepAlive.take_touched`)
and hands back the site's newest per export (:meth:`KeepAlive.seen_at`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from sense_plugin.errors import SenseError
from sense_plugin.export.book import JobBook
from sense_plugin.export.model import Export
from sense_plugin.timestamps import now_us

log = logging.getLogger(__name__)
SWEEP_S = 0.5


class KeepAlive:
    """Last request time per export (monotonic) and the sweep that stops forgotten ones."""

    def __init__(self, book: JobBook, stop: Callable[[int], Awaitable[object]], *,
                 shared: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        """``stop``: stops an export as ``action=stop`` does; ``clock``: monotonic seconds
        (unit tests pass a fake one)."""
        self._book = book
        self._clock = clock
        self._stop_export = stop
        self._seen: dict[int, float] = {}
        #: On a site: this server's requests (wall clock, µs) not yet shared with the others.
        self._touched: dict[int, int] | None = {} if shared else None
        self._task: asyncio.Task[None] | None = None
        #: The stops under way, by export id (a live stop waits for its cut).
        self._stops: dict[int, asyncio.Task[None]] = {}

    def touch(self, export: Export) -> None:
        """A request for ``export``: it counts while the export is unfinished and has a
        keepalive."""
        if export.finished_us is not None or export.options.keepalive_s <= 0:
            return
        self._seen[export.export_id] = self._clock()
        if self._touched is not None:
            self._touched[export.export_id] = now_us()

    def take_touched(self) -> dict[int, int]:
        """The requests seen here since the last call (export id → wall clock µs)."""
        if self._touched is None:
            return {}
        touched, self._touched = self._touched, {}
        return touched

    def keep_touched(self, touched: dict[int, int]) -> None:
        """Requests taken that could not be shared: shared with the next ones."""
        if self._touched is not None:
            for export_id, at_us in touched.items():
                self._touched[export_id] = max(at_us, self._touched.get(export_id, at_us))

    def seen_at(self, export_id: int, at_us: int) -> None:
        """A request for the export at ``at_us`` (wall clock), seen by any server."""
        at = self._clock() - max(now_us() - at_us, 0) / 1e6
        if at > self._seen.get(export_id, float("-inf")):
            self._seen[export_id] = at

    def start(self) -> None:
        self._task = asyncio.create_task(self._sweep(), name="export-keepalive")

    async def close(self) -> None:
        tasks = [t for t in (self._task, *self._stops.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            self.sweep()

    def sweep(self) -> list[int]:
        """Start stopping every export not asked for within its keepalive; their ids."""
        now = self._clock()
        watched = [e for e in self._book.active()
                   if e.options.keepalive_s > 0 and e.finished_us is None]
        # requests for other exports (finished, or run by other servers) are not kept
        self._seen = {e.export_id: self._seen.get(e.export_id, now) for e in watched}
        stopping = []
        for export in watched:
            limit = export.options.keepalive_s
            if now - self._seen[export.export_id] < limit or export.stopping \
                    or export.export_id in self._stops:
                continue
            log.info("export %s: no status request or download for %d s (keepalive); "
                     "stopping it", export.export_id, limit)
            task = asyncio.create_task(self._stop(export.export_id))
            self._stops[export.export_id] = task
            stopping.append(export.export_id)
        return stopping

    async def _stop(self, export_id: int) -> None:
        try:
            await self._stop_export(export_id)
        except SenseError as exc:  # finished (or stopped) meanwhile
            log.debug("keepalive stop of export %s: %s", export_id, exc)
        finally:
            self._stops.pop(export_id, None)
