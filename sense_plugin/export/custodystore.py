"""What the job store keeps for the chain of custody: audit records, holds, callbacks.

One server keeps them in its SQLite job store (:mod:`sense_plugin.export.custodydb`); a site
in its PostgreSQL (``cluster/custodypg.py``), where the audit chain is site-wide. None of it
is touched by export retention. The reference is ``docs/custody.rst``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class AuditEntry:
    """A record to append: everything but its place in the chain."""

    time_us: int
    user: str
    address: str
    action: str
    export_id: int | None
    detail: str


@dataclass(frozen=True)
class AuditRecord:
    """A stored audit record: its ``seq`` (1, 2, … without holes) and chained hash."""

    seq: int
    time_us: int
    user: str
    address: str
    action: str
    export_id: int | None
    detail: str
    hash: str


@dataclass(frozen=True)
class AuditQuery:
    """Which records ``getAuditLog`` lists (oldest first)."""

    export_id: int | None = None
    user: str | None = None
    start_us: int | None = None
    end_us: int | None = None
    offset: int = 0
    limit: int | None = None


def audit_where(query: AuditQuery, user_column: str, mark: str) -> tuple[str, tuple[Any, ...]]:
    """The ``WHERE`` clause of an audit query (``""`` for all records) and its parameters, for
    a store whose user column is ``user_column`` and whose driver's placeholder is ``mark``
    (``?`` for SQLite, ``%s`` for PostgreSQL)."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, op, value in (("export_id", "=", query.export_id),
                              (user_column, "=", query.user),
                              ("time_us", ">=", query.start_us),
                              ("time_us", "<=", query.end_us)):
        if value is not None:
            clauses.append(f"{column} {op} {mark}")
            params.append(value)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", tuple(params)


@dataclass(frozen=True)
class Hold:
    """An export kept past its retention deadline (and its footage out of archive retention)."""

    export_id: int
    user: str
    since_us: int


@dataclass(frozen=True)
class Delivery:
    """A callback to send: one event of one export to one receiver."""

    delivery_id: str
    export_id: int
    event: str
    url: str
    body: bytes
    created_us: int
    attempts: int = 0
    next_try_us: int = 0


@dataclass(frozen=True)
class DeliveryStats:
    """Callback figures for ``/metrics``."""

    delivered: int
    failures: int
    pending: int
    oldest_created_us: int | None


class CustodyStore(Protocol):
    """Durable audit records, holds and callback deliveries (every call is a coroutine)."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def append_audit(self, entry: AuditEntry) -> AuditRecord:
        """Append one record at the end of the chain (appends are serialised)."""

    async def audit_page(self, query: AuditQuery) -> tuple[list[AuditRecord], int]:
        """The records the query selects (offset, limit applied) and how many match."""

    async def add_hold(self, hold: Hold) -> bool:
        """Hold the export; False when it is held already."""

    async def remove_hold(self, export_id: int) -> bool:
        """Release the export; False when it was not held."""

    async def holds(self) -> dict[int, Hold]:
        """Every held export."""

    async def add_deliveries(self, deliveries: list[Delivery]) -> None: ...

    async def due_deliveries(self, at_us: int, limit: int) -> list[Delivery]:
        """The first undelivered delivery of each export whose next try is due, oldest first."""

    async def delivered(self, delivery_id: str) -> None: ...

    async def retry_later(self, delivery_id: str, next_try_us: int, give_up: bool) -> None:
        """A failed attempt: try again at ``next_try_us``, or never (``give_up``)."""

    async def delivery_stats(self) -> DeliveryStats: ...
