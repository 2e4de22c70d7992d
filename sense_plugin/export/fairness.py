"""Which waiting device job gets the next free worker: fair shares by cost, per-user caps.

Pure policy, no I/O and no clock: the dispatcher (``export/dispatch.py``) asks
:class:`FairQueue` for the next job whenever a worker is free and tells it when a job's
worker is free again. The policy and its weights are described in ``docs/scheduling.rst``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

#: Cost of one second of footage cut by stream copy; a rendered second costs ``render_weight``.
COPY_WEIGHT = 1.0
#: Every job costs at least this many weighted seconds (opening sources, writing a manifest).
MIN_COST_S = 1.0


@dataclass(frozen=True)
class Ticket:
    """A device job waiting for a worker."""

    key: tuple[int, int]
    owner: str
    #: Weighted seconds of footage (:func:`job_cost`).
    cost: float
    #: Arrival order: among one user's jobs, and between equal shares, the first comes first.
    seq: int
    #: Holds its worker for a time the work does not decide (a live stream copy until its
    #: range ends, a job paced by a bandwidth cap): never run past its user's cap.
    holds: bool = False


@dataclass(frozen=True)
class Limits:
    """How many workers exist, and how many one user may hold (0: no per-user cap)."""

    workers: int
    per_user: int = 0


def job_cost(span_us: int, rendered: bool, render_weight: float) -> float:
    """Weighted seconds of a job: its footage in seconds, times ``render_weight`` when it is
    rendered (decoded and encoded again) instead of copied; at least :data:`MIN_COST_S`."""
    weight = render_weight if rendered else COPY_WEIGHT
    return max(span_us / 1_000_000, 0.0) * weight + MIN_COST_S


def default_per_user(workers: int) -> int:
    """The automatic per-user cap: every worker but one, so one user never holds them all."""
    return max(1, workers - 1)


def choose(waiting: Iterable[Ticket], running: Counter[str], served: dict[str, float],
           free: int, limits: Limits) -> Ticket | None:
    """The ticket to start on one of ``free`` workers, or None (nothing may start).

    A user under the cap comes first, the one with the least ``served`` cost first; with a
    single worker free, a user running nothing goes before a user already running a job.
    Past the cap a user's job starts only when no user under the cap waits and it does not
    hold its worker without end (work-conserving: an idle worker helps whoever waits).
    """
    if free <= 0:
        return None
    tickets = list(waiting)
    cap = limits.per_user

    def under_cap(ticket: Ticket) -> bool:
        return cap <= 0 or running[ticket.owner] < cap

    def order(ticket: Ticket) -> tuple[bool, float, int]:
        busy = free == 1 and running[ticket.owner] > 0
        return busy, served.get(ticket.owner, 0.0), ticket.seq

    first = [t for t in tickets if under_cap(t)]
    if first:
        return min(first, key=order)
    borrowing = [t for t in tickets if not t.holds]
    return min(borrowing, key=order) if borrowing else None


class FairQueue:
    """The waiting tickets, the running ones per user and the cost each user was served."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._waiting: dict[tuple[int, int], Ticket] = {}
        self._running: dict[tuple[int, int], Ticket] = {}
        #: Cost started per user since the user last had nothing waiting or running.
        self._served: dict[str, float] = {}
        #: The share the last started job began at: where a user who was away joins.
        self._clock = 0.0

    def __len__(self) -> int:
        return len(self._waiting)

    def __contains__(self, key: object) -> bool:
        return key in self._waiting

    def add(self, ticket: Ticket) -> None:
        """A job waits for a worker. A user who had nothing waiting or running joins at the
        share the last started job began at: ahead of every job not started yet of a user
        who was served more, with no credit saved up while away."""
        if ticket.owner not in self._served:
            self._served[ticket.owner] = self._clock
        self._waiting[ticket.key] = ticket

    def discard(self, key: tuple[int, int]) -> None:
        """A waiting job leaves without starting (removed, stopped)."""
        ticket = self._waiting.pop(key, None)
        if ticket is not None:
            self._forget_idle(ticket.owner)

    def pop_next(self, free: int) -> Ticket | None:
        """The ticket to start now on a free worker (charged to its user), or None."""
        running = Counter(t.owner for t in self._running.values())
        ticket = choose(self._waiting.values(), running, self._served, free, self.limits)
        if ticket is not None:
            del self._waiting[ticket.key]
            self._running[ticket.key] = ticket
            self._clock = self._served.get(ticket.owner, 0.0)
            self._served[ticket.owner] = self._clock + ticket.cost
        return ticket

    def done(self, key: tuple[int, int]) -> None:
        """The job's worker is free again."""
        ticket = self._running.pop(key, None)
        if ticket is not None:
            self._forget_idle(ticket.owner)

    def running_of(self, owner: str) -> int:
        """How many workers the user holds now."""
        return sum(1 for t in self._running.values() if t.owner == owner)

    def served(self, owner: str) -> float:
        """The cost started for the user since they last had nothing waiting or running."""
        return self._served.get(owner, 0.0)

    def _owners(self) -> set[str]:
        return {t.owner for t in (*self._waiting.values(), *self._running.values())}

    def _forget_idle(self, owner: str) -> None:
        owners = self._owners()
        if owner not in owners:
            self._served.pop(owner, None)
        if not owners:  # nobody waits or runs: shares start again from nothing
            self._clock = 0.0
