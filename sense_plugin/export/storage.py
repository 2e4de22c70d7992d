"""The job store's interface: where exports and their device jobs persist.

One server keeps them in SQLite (:mod:`sense_plugin.export.store`); a site of several servers
in PostgreSQL (``sense_plugin.cluster``). The :class:`~sense_plugin.export.book.JobBook` is
the only caller: it decides every transition and writes it through one of these methods
before anyone is told. Every method is a coroutine, so an implementation runs its blocking
work off the event loop (a dedicated thread for SQLite, an asyncio driver for PostgreSQL).

A failing store raises :class:`~sense_plugin.errors.SenseError` (a coded error, logged with
an incident id); a store that cannot be trusted at open raises ``StoreDamagedError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sense_plugin.export.custodystore import CustodyStore
from sense_plugin.export.model import Export, Job, Status


@dataclass(frozen=True)
class ExportQuery:
    """Which exports a status list shows, in export id order."""

    #: Only this user's exports; None: everybody's (an admin).
    owner: str | None = None
    #: Only exports whose combined status is one of these; None: any.
    statuses: frozenset[Status] | None = None
    #: Newest (highest id) first, as paged lists are; else oldest first.
    newest_first: bool = False
    offset: int = 0
    #: At most this many; None: all from ``offset`` on.
    limit: int | None = None
    #: Only the export made by retrying this one (there is at most one).
    retried_from: int | None = None


class JobStore(Protocol):
    """Durable exports and jobs. Ids are unique and never reused; they only grow."""

    #: What and where the store is, for logs and errors ("SQLite /var/lib/.../x.sqlite3").
    description: str

    async def open(self) -> None:
        """Create or upgrade the schema and check it can be trusted."""

    async def close(self) -> None: ...

    async def new_id(self) -> int:
        """A new export id, above every id this store (or its directory) ever gave out."""

    async def insert(self, export: Export) -> None:
        """Store a new export and all its jobs in one transaction (all or nothing)."""

    async def save_job(self, export: Export, job: Job) -> None:
        """Persist one job's state and its export's combined status (``export.status``)."""

    async def claim_finish(self, export: Export) -> bool:
        """Whether the caller finishes ``export`` now (writes its manifest, stamps it).

        True once every job of the export is terminal and nobody finished it yet; on a site
        the jobs other servers ran are refreshed into ``export`` first and only one server
        ever gets True.
        """

    async def save_export(self, export: Export) -> None:
        """Persist an export's finish time, retention deadline and combined status."""

    async def delete(self, export_ids: Sequence[int]) -> None:
        """Forget these exports and their jobs for good (history retention)."""

    async def get(self, export_id: int) -> Export | None:
        """One export with its jobs, or None."""

    async def unfinished(self) -> list[Export]:
        """Every export without a finish time, oldest first (resumed at start)."""

    async def page(self, query: ExportQuery) -> tuple[list[Export], int]:
        """The exports the query selects (offset, limit applied) and how many match."""

    async def expiring(self, at_us: int) -> list[Export]:
        """COMPLETED or FAILED exports whose retention deadline is at or before ``at_us``."""

    async def finished_before(self, at_us: int) -> list[Export]:
        """Finished exports whose finish time is at or before ``at_us`` (history to purge)."""

    async def count_by_status(self) -> tuple[dict[Status, int], dict[Status, int]]:
        """How many exports have each combined status, and how many jobs each status."""

    async def directories(self) -> dict[str, int]:
        """Every export's directory (``Export.directory`` as text) → its id."""


class SiteStore(JobStore, Protocol):
    """The job store a site's servers share (``cluster.sitestore``): what they ask of each
    other's jobs, and which of them hold files of which export."""

    async def ask_stop(self, export_id: int, index: int) -> None:
        """Ask the server running this job to end it now, keeping its file."""

    async def hold(self, export_id: int) -> None:
        """This server is about to write into the export's directory."""

    async def released(self) -> tuple[list[Export], list[int]]:
        """This server's holdings of exports REMOVED or EXPIRED, and of ids no longer
        stored: their files here are to be deleted."""

    async def let_go(self, export_ids: Sequence[int]) -> None:
        """This server's files of these exports are deleted."""

    def custody_store(self) -> CustodyStore:
        """The site's audit trail, holds and callbacks (in the same database)."""

    async def seen(self, touched: Mapping[int, int], export_ids: Sequence[int]
                   ) -> dict[int, int]:
        """Keepalive: record this server's newest request per export (wall clock µs); the
        site's newest for ``export_ids``."""
