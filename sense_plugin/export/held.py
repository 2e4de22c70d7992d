"""The exports the job book holds in memory: the unfinished ones and recent finished ones.

An unfinished export is one object from its creation (or resumption) to its finish: its
progress moves between writes, so readers are given that object, never a stored copy. A
finished export read from the store is kept too (status polls of recent exports), bounded
and least recently used first. On a site (``site_server``) exports are always read from the
store (other servers change them) and nothing finished is kept; only this server's running
jobs are live objects here, put in place of their stored rows.

This is the one place export *state* is kept in memory, and it needs no invalidation: what
it holds are the book's own objects, not copies. Every read of the book that returns
exports passes them through :meth:`HeldExports.live`, so every change the book makes later
(expiry, a hold's mark) is made on the object held here, and a purge forgets it. Rendered
status (bytes) is the API's, kept by its status cache under the engine version
(api/statuscache.py; docs/performance.rst, "One owner per cache").

Nothing here changes a status: the transitions are :class:`~sense_plugin.export.book.JobBook`'s.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable

from sense_plugin.export.model import Export

#: Finished exports kept in memory after they were read (status polls of recent exports).
CACHED_FINISHED = 4096


class HeldExports:
    """The live objects of unfinished exports and a bounded cache of finished ones."""

    def __init__(self, site_server: int | None = None,
                 localize: Callable[[Export], None] | None = None) -> None:
        self.site_server = site_server
        self._localize = localize or (lambda export: None)
        self._active: dict[int, Export] = {}
        self._finished: OrderedDict[int, Export] = OrderedDict()

    def resume(self, unfinished: Iterable[Export]) -> None:
        """Hold the unfinished exports read from the store at start."""
        self._active = {e.export_id: e for e in unfinished}

    def active(self) -> list[Export]:
        """The unfinished exports, oldest first."""
        return sorted(self._active.values(), key=lambda e: e.export_id)

    def active_export(self, export_id: int) -> Export:
        """An unfinished export (a running job's)."""
        return self._active[export_id]

    def pending_owners(self, pending: Iterable[tuple[int, int]]) -> list[str]:
        return [self._active[key[0]].owner for key in pending if key[0] in self._active]

    def find(self, export_id: int) -> Export | None:
        """The export's object in memory, if it is held (unfinished, or cached: then it is
        now the most recently read)."""
        active = self._active.get(export_id)
        if active is not None:
            return active
        cached = self._finished.get(export_id)
        if cached is not None:
            self._finished.move_to_end(export_id)
        return cached

    def live(self, stored: Export) -> Export:
        """The in-memory object of an export read from the store (cached once finished)."""
        if self.site_server is not None:
            return self._merged(stored, self._active.get(stored.export_id))
        held = self.find(stored.export_id)
        if held is not None:
            return held
        if stored.finished_us is not None:
            self._cache(stored)
        return stored

    def _merged(self, stored: Export, active: Export | None) -> Export:
        """A site's stored export with this server's live jobs in place of their rows."""
        self._localize(stored)
        if active is not None:
            mine = {j.index: j for j in active.jobs if j.server_id == self.site_server}
            stored.jobs = [mine.get(j.index, j) for j in stored.jobs]
        return stored

    def add(self, export: Export) -> None:
        """A new export, held while unfinished (on a site its jobs arrive through the queue
        and their export is adopted then)."""
        if self.site_server is None:
            self._active[export.export_id] = export

    def adopt(self, stored: Export) -> Export:
        """Site: a stored export one of whose jobs this server runs now (kept while it runs)."""
        active = self._active.get(stored.export_id)
        if active is not None:
            return active
        self._localize(stored)
        self._active[stored.export_id] = stored
        return stored

    def retire(self, export: Export) -> bool:
        """Site: forget an export here once this server's jobs of it have all ended
        (whether it was forgotten)."""
        if self.site_server is None:
            return False
        mine = [j for j in export.jobs if j.server_id == self.site_server]
        if all(j.terminal for j in mine):
            self._active.pop(export.export_id, None)
            return True
        return False

    def finished(self, export: Export) -> None:
        """The export has finished: no longer active, cached instead."""
        self._active.pop(export.export_id, None)
        self._cache(export)

    def _cache(self, export: Export) -> None:
        """Keep a finished export (the oldest read is let go of beyond ``CACHED_FINISHED``)."""
        if self.site_server is not None:
            return
        self._finished[export.export_id] = export
        self._finished.move_to_end(export.export_id)
        while len(self._finished) > CACHED_FINISHED:
            self._finished.popitem(last=False)

    def forget(self, export_id: int) -> None:
        """A purged export is not cached any more."""
        self._finished.pop(export_id, None)
