"""Evidence holds: an export kept past its deadline, its footage out of archive retention.

A hold is a row in the job store (``docs/custody.rst``). While it stands, export retention
neither expires nor purges the export, ``action=remove`` is refused (-22 naming the hold),
and the archive segments each device job was cut from are pinned, so archive retention
keeps them; ``getRecordings`` shows the intervals they overlap as held.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sense_plugin.archive.retention import PinRegistry
from sense_plugin.errors import OutOfRangeError
from sense_plugin.export.custodystore import CustodyStore, Hold
from sense_plugin.export.model import Export
from sense_plugin.timestamps import format_timestamp, now_us


class Holds:
    """The holds of this server's store, mirrored in memory with their archive pins."""

    def __init__(self, store: CustodyStore, pins: PinRegistry) -> None:
        self._store = store
        self._pins = pins
        self._held: dict[int, Hold] = {}
        #: export id → the pin tokens of its device ranges, and the ranges themselves.
        self._tokens: dict[int, list[int]] = {}
        self._ranges: dict[int, list[tuple[int, int, int]]] = {}
        #: Bumped whenever the set of held exports changes (status answers show holds).
        self.version = 0

    async def load(self, exports: dict[int, Export]) -> None:
        """Read the holds at start and pin the ranges of the held exports given."""
        self._held = await self._store.holds()
        for export_id in self._held:
            export = exports.get(export_id)
            if export is not None:
                self._pin(export)

    async def refresh(self, get: Callable[[int], Awaitable[Export | None]]) -> set[int]:
        """The held export ids as stored now; the footage of holds placed or released by
        another server of a site is pinned or let go here too (``get``: an export by id)."""
        before = set(self._held)
        self._held = await self._store.holds()
        self.version += set(self._held) != before
        for export_id in set(self._tokens) - set(self._held):
            for token in self._tokens.pop(export_id):
                self._pins.unpin(token)
            self._ranges.pop(export_id, None)
        for export_id in set(self._held) - set(self._tokens):
            export = await get(export_id)
            if export is not None:
                self._pin(export)
        return set(self._held)

    def is_held(self, export_id: int) -> bool:
        return export_id in self._held

    def mark(self, export: Export) -> Export:
        """Set ``export.held`` from the holds (status shows it)."""
        export.held = export.export_id in self._held
        return export

    async def hold(self, export: Export, user: str) -> Hold:
        """Hold ``export``; -22 when it is held already."""
        hold = Hold(export.export_id, user, now_us())
        if not await self._store.add_hold(hold):
            raise OutOfRangeError(f"export {export.export_id} is held already")
        self._held[export.export_id] = hold
        self.version += 1
        self._pin(export)
        return hold

    async def release(self, export: Export) -> None:
        """Release ``export``; -22 when it is not held."""
        if not await self._store.remove_hold(export.export_id):
            raise OutOfRangeError(f"export {export.export_id} is not held: there is nothing "
                                  "to release")
        self._held.pop(export.export_id, None)
        self.version += 1
        for token in self._tokens.pop(export.export_id, []):
            self._pins.unpin(token)
        self._ranges.pop(export.export_id, None)

    def check_removable(self, export_id: int) -> None:
        """-22 naming the hold when the export is held."""
        hold = self._held.get(export_id)
        if hold is not None:
            raise OutOfRangeError(
                f"export {export_id} is held (hold by '{hold.user or '-'}' since "
                f"{format_timestamp(hold.since_us)}): release the hold before removing it")

    def held_ranges(self, device_id: int) -> list[tuple[int, int]]:
        """The device's archive ranges that held exports were cut from."""
        return [(start, end) for ranges in self._ranges.values()
                for device, start, end in ranges if device == device_id]

    def _pin(self, export: Export) -> None:
        if export.export_id in self._tokens:
            return
        ranges = [(j.device_id, j.start_us, max(j.end_us, j.start_us + 1)) for j in export.jobs]
        self._ranges[export.export_id] = ranges
        self._tokens[export.export_id] = [self._pins.pin(*r) for r in ranges]
