"""An in-memory ``JobStore`` for unit tests of the lifecycle: fast, and able to fail on cue.

It keeps deep copies (what is stored is what was written, never the caller's live object),
meets the same contract as the SQLite and PostgreSQL stores (``tests/store_contract.py`` runs
against it in ``test_memstore.py``), and can be told to fail a method the next N times or to
yield to the loop inside every call (so concurrent transitions interleave as they would with a
real store's round trip).
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from collections.abc import Sequence

from sense_plugin.errors import StorageError
from sense_plugin.export.model import Export, Job, Status
from sense_plugin.export.storage import ExportQuery


class MemoryJobStore:
    """Exports and jobs in a dict; ids grow and are never reused."""

    description = "memory"

    def __init__(self) -> None:
        self.exports: dict[int, Export] = {}
        self.last_id = 0
        #: Method name → how many of its next calls raise ``StorageError``.
        self.failing: Counter[str] = Counter()
        #: Every write, in order: (method, export id, job index or -1, status written).
        self.writes: list[tuple[str, int, int, Status]] = []
        self.opened = self.closed = False

    def fail(self, method: str, times: int = 1) -> None:
        self.failing[method] += times

    async def _call(self, method: str) -> None:
        await asyncio.sleep(0)  # a round trip: other tasks run meanwhile
        if self.failing[method] > 0:
            self.failing[method] -= 1
            raise StorageError(f"store {method} failed (injected)")

    async def open(self) -> None:
        self.opened = True

    async def close(self) -> None:
        self.closed = True

    async def new_id(self) -> int:
        await self._call("new_id")
        self.last_id += 1
        return self.last_id

    async def insert(self, export: Export) -> None:
        await self._call("insert")
        indexes = [j.index for j in export.jobs]
        if export.export_id in self.exports or len(set(indexes)) != len(indexes):
            raise StorageError(f"export {export.export_id} cannot be inserted")
        self.exports[export.export_id] = copy.deepcopy(export)
        self.last_id = max(self.last_id, export.export_id)
        self.writes.append(("insert", export.export_id, -1, export.status))

    async def save_job(self, export: Export, job: Job) -> None:
        await self._call("save_job")
        stored = self.exports.get(export.export_id)
        if stored is None:
            return  # purged meanwhile: a late write changes nothing
        stored.jobs = [copy.deepcopy(job) if j.index == job.index else j for j in stored.jobs]
        self.writes.append(("save_job", export.export_id, job.index, job.status))

    async def claim_finish(self, export: Export) -> bool:
        await self._call("claim_finish")
        return export.finished_us is None and all(j.terminal for j in export.jobs)

    async def save_export(self, export: Export) -> None:
        await self._call("save_export")
        if export.export_id in self.exports:
            self.exports[export.export_id] = copy.deepcopy(export)
            self.writes.append(("save_export", export.export_id, -1, export.status))

    async def delete(self, export_ids: Sequence[int]) -> None:
        await self._call("delete")
        for export_id in export_ids:
            self.exports.pop(export_id, None)

    async def get(self, export_id: int) -> Export | None:
        await self._call("get")
        stored = self.exports.get(export_id)
        return None if stored is None else copy.deepcopy(stored)

    async def unfinished(self) -> list[Export]:
        await self._call("unfinished")
        return [copy.deepcopy(e) for _, e in sorted(self.exports.items())
                if e.finished_us is None]

    async def page(self, query: ExportQuery) -> tuple[list[Export], int]:
        await self._call("page")
        found = [e for _, e in sorted(self.exports.items())
                 if (query.owner is None or e.owner == query.owner)
                 and (query.statuses is None or e.status in query.statuses)
                 and (query.retried_from is None or e.retried_from == query.retried_from)]
        if query.newest_first:
            found.reverse()
        end = None if query.limit is None else query.offset + query.limit
        return [copy.deepcopy(e) for e in found[query.offset:end]], len(found)

    async def expiring(self, at_us: int) -> list[Export]:
        await self._call("expiring")
        return [copy.deepcopy(e) for _, e in sorted(self.exports.items())
                if e.status in (Status.COMPLETED, Status.FAILED)
                and e.expires_us is not None and e.expires_us <= at_us]

    async def finished_before(self, at_us: int) -> list[Export]:
        await self._call("finished_before")
        return [copy.deepcopy(e) for _, e in sorted(self.exports.items())
                if e.finished_us is not None and e.finished_us <= at_us]

    async def count_by_status(self) -> tuple[dict[Status, int], dict[Status, int]]:
        await self._call("count_by_status")
        exports = Counter(e.status for e in self.exports.values())
        jobs = Counter(j.status for e in self.exports.values() for j in e.jobs)
        return dict(exports), dict(jobs)

    async def directories(self) -> dict[str, int]:
        await self._call("directories")
        return {str(e.directory): i for i, e in self.exports.items()}
