"""Whole-document cache for the export list (``getExportVideoStatus`` without ``exportid``).

Monitoring clients poll the full list many times a second; rendering it costs far more than
answering. An answer is cached per caller and query (user, admin, ``status``, ``limit``,
``offset``) together with what it depends on:

- the engine's ``version``, bumped on every state change it persists (create, job status,
  finish, purge), which covers membership, order and every finished export; and
- the live counters (progress, bytes, bandwidth, status) of the jobs of the exports that were
  still unfinished in that answer, which move in memory between persisted changes.

A request whose version and live counters are unchanged gets the stored bytes, so with two
exports running the list is rendered only when one of them reports progress, not for every
poll. The wrapper sits around the registered handler, so what the handler answers (its
fields, its paging attributes) is exactly what is cached.

Status by id (``exportid``) of a *finished* export is cached the same way, keyed by the id:
such an export is read from the store (a query on the store's thread) and no longer changes
but through a state change, which bumps the version. An unfinished export is always asked of
the handler, since a request for it counts as its keepalive; errors are never cached.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace

from aiohttp import web

from sense_plugin.api import render
from sense_plugin.api.keys import ENGINE
from sense_plugin.api.middleware import xml_response
from sense_plugin.api.registry import Command, CommandContext, Handler
from sense_plugin.api.results import ExportStatusList
from sense_plugin.cluster.keys import SITE
from sense_plugin.export.model import Export, Job

COMMAND = "getexportvideostatus"
#: Distinct (caller, query) answers kept; the least recently used goes first.
MAX_ENTRIES = 256
#: (user, admin, status, limit, offset, exportid)
Key = tuple[str, bool, str | None, str | None, str | None, str | None]
Live = tuple[tuple[str, int, int, int], ...]


@dataclass(frozen=True)
class _Entry:
    version: int
    jobs: tuple[Job, ...]
    live: Live
    body: bytes
    #: The unfinished exports the answer lists: a cached answer still counts as a request
    #: for them (keepalive), as the answer computed anew does.
    listed: tuple[Export, ...] = ()


def live_state(jobs: Iterable[Job]) -> Live:
    """The in-memory counters of these jobs that an answer shows."""
    return tuple((j.status.value, j.progress, j.bytes_written, j.bandwidth_kbps) for j in jobs)


class StatusListCache:
    """Cached answers of the export list, validated on every request (see module doc)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        self._max = max_entries
        #: The answer being computed per key (with the version it is for): requests that
        #: arrive meanwhile wait for it instead of computing the same answer again.
        self._inflight: dict[Key, tuple[int, asyncio.Future[bytes | None]]] = {}
        self.hits = 0
        self.misses = 0

    def wrap(self, handler: Handler) -> Handler:
        """The handler, answering from the cache when still valid (see module doc)."""

        async def cached(ctx: CommandContext) -> object:
            if SITE in ctx.app:
                return await handler(ctx)  # a site: other servers change the list unseen
            params = ctx.params
            export_id = params.text("exportid")
            key: Key = (ctx.user.name, ctx.user.is_admin, params.text("status"),
                        params.text("limit"), params.text("offset"), export_id)
            version = ctx.app[ENGINE].version
            hit = self._valid(key, version)
            if hit is not None:
                ctx.app[ENGINE].touch(hit.listed)
                return xml_response(hit.body)
            if export_id is not None:
                return await self._by_id(ctx, handler, key, version)
            running = self._inflight.get(key)
            if running is not None and running[0] == version:  # one answer computed at a time
                body = await asyncio.shield(running[1])
                if body is not None:
                    self.hits += 1
                    return xml_response(body)
            future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
            self._inflight[key] = (version, future)
            try:
                result = await handler(ctx)
                if not isinstance(result, ExportStatusList):
                    future.set_result(None)
                    return result
                self.misses += 1
                body = render.success(result)
                listed = tuple(e for e in result.exports if e.finished_us is None)
                jobs = tuple(j for e in listed for j in e.jobs)
                self._store(key, _Entry(version, jobs, live_state(jobs), body, listed))
                future.set_result(body)
                return xml_response(body)
            finally:
                if not future.done():
                    future.set_result(None)  # failed: the waiters ask for themselves
                if self._inflight.get(key, (0, None))[1] is future:
                    del self._inflight[key]

        return cached

    def _valid(self, key: Key, version: int) -> _Entry | None:
        """The stored answer for ``key`` if nothing it shows has changed since."""
        entry = self._entries.get(key)
        if entry is None or entry.version != version or live_state(entry.jobs) != entry.live:
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    async def _by_id(self, ctx: CommandContext, handler: Handler, key: Key,
                     version: int) -> object:
        """Status by id from the handler; kept when the export has finished."""
        result = await handler(ctx)
        if not isinstance(result, ExportStatusList):
            return result
        body = render.success(result)
        if all(e.finished_us is not None for e in result.exports):
            self.misses += 1
            self._store(key, _Entry(version, (), (), body))
        return xml_response(body)

    def _store(self, key: Key, entry: _Entry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


def with_status_cache(commands: Iterable[Command], cache: StatusListCache) -> list[Command]:
    """The commands, with ``getExportVideoStatus`` answering lists through ``cache``."""
    return [replace(c, handler=cache.wrap(c.handler)) if c.name.lower() == COMMAND else c
            for c in commands]


STATUS_CACHE = web.AppKey("status_cache", StatusListCache)
