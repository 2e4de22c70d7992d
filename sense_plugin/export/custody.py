"""The chain of custody of exports: the audit trail, holds and completion callbacks.

One object the engine owns (``engine.custody``): it records who did what to which export
(:mod:`~sense_plugin.export.audit`), keeps held exports and their footage
(:class:`~sense_plugin.export.holds.Holds`) and stores the callbacks of export events
(:class:`~sense_plugin.export.callbacks.CallbackQueue`). Reference: ``docs/custody.rst``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sense_plugin.archive.retention import PinRegistry
from sense_plugin.config import Config
from sense_plugin.errors import OutOfRangeError
from sense_plugin.export import audit
from sense_plugin.export.audit import Actor
from sense_plugin.export.callbacks import CallbackQueue
from sense_plugin.export.custodystore import AuditQuery, AuditRecord, CustodyStore
from sense_plugin.export.holds import Holds
from sense_plugin.export.model import Export, Status

log = logging.getLogger(__name__)
#: At most this many audit records go into one manifest (the oldest ones, from creation).
MANIFEST_RECORDS = 10_000
#: The callback event of an export that finished with this status.
FINISH_EVENTS = {Status.COMPLETED: "completed", Status.FAILED: "failed",
                 Status.REMOVED: "removed"}


class Custody:
    """Audit records, holds and callbacks of one server's (or site's) exports."""

    def __init__(self, config: Config, store: CustodyStore, pins: PinRegistry) -> None:
        self.store = store
        self.holds = Holds(store, pins)
        self.callbacks = CallbackQueue(config, store)
        self._get: Callable[[int], Awaitable[Export | None]] = _nothing

    async def open(self, get: Callable[[int], Awaitable[Export | None]]) -> None:
        """Open the store; pin the footage of held exports again (``get``: an export by id)."""
        self._get = get
        await self.store.open()
        held = await self.store.holds()
        exports = {i: e for i in held if (e := await get(i)) is not None}
        await self.holds.load(exports)

    async def close(self) -> None:
        await self.store.close()

    async def refresh_holds(self) -> set[int]:
        """The held export ids as stored now (a site's other servers may have changed them)."""
        return await self.holds.refresh(self._get)

    async def record(self, action: str, export_id: int | None, detail: str = "",
                     actor: Actor | None = None) -> AuditRecord | None:
        """Append an audit record (by the current request's actor unless ``actor``); a
        store failure is logged with the record, never raised (the action has happened)."""
        item = audit.entry(action, export_id, detail, actor)
        try:
            return await self.store.append_audit(item)
        except Exception:
            log.exception("audit record not stored: %s", item)
            return None

    async def audit_of(self, export_id: int) -> list[AuditRecord]:
        """The export's audit records so far, oldest first (its manifest lists them)."""
        records, _ = await self.store.audit_page(AuditQuery(export_id=export_id,
                                                            limit=MANIFEST_RECORDS))
        return records

    async def created(self, export: Export) -> None:
        """An export was admitted (before its jobs are queued: its manifest lists it)."""
        detail = ", ".join(f"device {j.device_id}" for j in export.jobs)
        if export.retried_from:
            detail += f"; retry of {export.retried_from}"
        await self.record("create", export.export_id, detail)

    async def removing(self, export: Export) -> bool:
        """``action=remove`` is about to run: -22 naming the hold of a held export, else the
        removal is recorded; whether the export had finished before."""
        self.holds.check_removable(export.export_id)
        await self.record("remove", export.export_id)
        return export.finished_us is not None

    async def finished(self, export: Export) -> None:
        """The export has just finished (its status is final): its callbacks."""
        event = FINISH_EVENTS.get(export.status)
        if event is not None:
            await self.callbacks.event(event, export)

    async def removed(self, export: Export, was_finished: bool) -> None:
        """``action=remove`` of an export that had finished before (a running one's removal
        is its finish)."""
        if was_finished:
            await self.callbacks.event("removed", export)

    async def expired(self, export: Export) -> None:
        """Retention took the export's files."""
        await self.record("expiry", export.export_id, "retention deadline passed",
                          Actor("", ""))
        await self.callbacks.event("expired", export)

    async def hold(self, export: Export, user: str) -> Export:
        """Hold a finished export (-22 for one still running or already expired)."""
        if export.status not in (Status.COMPLETED, Status.FAILED):
            raise OutOfRangeError(f"export {export.export_id} is {export.status.value}; only "
                                  "COMPLETED or FAILED exports can be held")
        await self.holds.hold(export, user)
        await self.record("hold", export.export_id)
        self.holds.mark(export)
        await self.callbacks.event("held", export)
        return export

    async def release(self, export: Export) -> Export:
        await self.holds.release(export)
        await self.record("release", export.export_id)
        return self.holds.mark(export)


async def _nothing(export_id: int) -> Export | None:
    return None
