"""The snapshot pool: getSnapshot decodes on its own few threads, bounded in total and per user.

A snapshot decodes up to a GOP of video, far more than a download or a status answer costs,
and any view-only user may ask for many at once. On the shared I/O pool a flood of them queued
every other user's downloads behind the decodes; here they wait only for each other:

* ``http.snapshot_threads`` threads, not shared with anything else;
* at most ``http.max_pending_snapshots`` snapshots running or waiting; one more is refused at
  once with -1006 (HTTP 503, ``Retry-After``) instead of queueing without bound;
* at most ``http.max_snapshots_per_user`` of them per user, so one user cannot take the pool.

A snapshot is counted until its thread is done with it, even when its client went away.
See docs/security.rst, "Snapshots".
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from sense_plugin.api.passcheck import ServiceBusyError

T = TypeVar("T")


class SnapshotPool:
    """Runs snapshot work off the event loop within the limits above (call :meth:`close`)."""

    def __init__(self, threads: int, max_pending: int, max_per_user: int) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="sense-snapshot")
        self._max_pending = max_pending
        self._max_per_user = max_per_user
        self._per_user: Counter[str] = Counter()

    @property
    def pending(self) -> int:
        return self._per_user.total()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def run(self, user: str, work: Callable[..., T], *args: object) -> T:
        """``work(*args)`` on a snapshot thread; :class:`ServiceBusyError` past a limit."""
        if self.pending >= self._max_pending:
            raise ServiceBusyError("too many snapshots are being made at once; retry in 1 s")
        if self._per_user[user] >= self._max_per_user:
            raise ServiceBusyError(
                f"{self._per_user[user]} snapshots of user '{user}' are being made already "
                f"(at most {self._max_per_user} at once); retry in 1 s")
        loop = asyncio.get_running_loop()
        self._per_user[user] += 1
        future: Future[T] = self._pool.submit(work, *args)
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._done, user))
        return await asyncio.wrap_future(future)

    def _done(self, user: str) -> None:
        self._per_user[user] -= 1
        if self._per_user[user] <= 0:
            del self._per_user[user]
