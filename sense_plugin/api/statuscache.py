"""The app's cache of ``getExportVideoStatus`` answers: the one owner of rendered export status.

Monitoring clients poll the full list many times a second; rendering it costs far more than
answering. An answer is cached per caller and query (user, admin, ``status``, ``limit``,
``offset``, ``exportid``) and stamped with the engine's ``version``, bumped on every state
change the engine persists (create, job status, finish, expiry, hold, purge): membership,
order, paging totals and every finished export. That is the one invalidation rule; an answer
listing unfinished exports is also checked against their jobs' live state (progress, bytes,
rate, status, a live job's stop), which moves in memory between persisted changes.

- Same version, same live state: the stored bytes are sent.
- Same version, live state moved (a running export reported progress): the answer is
  rendered again from the exports it listed (the same in-memory objects), without asking the
  store; only the unfinished exports' ``<export>`` elements are serialised anew.
- Another version: the handler answers afresh.

Each finished export's ``<export>`` element is kept too, keyed by everything a finished export
can still change (job statuses, deadline, hold): a memo of rendering rather than a copy of
state, so it needs no invalidation, only a bound. The exports themselves are the job book's
(export/held.py); nothing else caches status (docs/performance.rst, "One owner per cache").

Status by id of a *finished* export is cached the same way; an unfinished one is always asked
of the handler, since a request for it counts as its keepalive. A cached list still counts as a
request for the unfinished exports it shows. Errors are never cached; a site (other servers
change its exports unseen) is never cached.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace

from aiohttp import web

from sense_plugin.api import render
from sense_plugin.api.exportxml import export_bytes, exports_bytes
from sense_plugin.api.keys import ENGINE
from sense_plugin.api.middleware import xml_response
from sense_plugin.api.registry import Command, CommandContext, Handler
from sense_plugin.api.results import ExportStatusList
from sense_plugin.cluster.keys import SITE
from sense_plugin.export.model import Export, Job

COMMAND = "getexportvideostatus"
#: Distinct (caller, query) answers kept; the least recently used goes first.
MAX_ENTRIES = 256
#: Finished exports' ``<export>`` elements kept (about 1-2 KB each).
MAX_FRAGMENTS = 20_000
#: (user, admin, status, limit, offset, exportid)
Key = tuple[str, bool, str | None, str | None, str | None, str | None]
Live = tuple[tuple[str, int, int, int, bool, int, int], ...]
#: What a finished export can still change (expiry, hold, ...), with its export id.
FragmentKey = tuple[object, ...]


@dataclass(frozen=True)
class _Entry:
    version: int
    result: ExportStatusList
    live: Live
    body: bytes
    #: The unfinished exports the answer lists: a cached answer still counts as a request
    #: for them (keepalive), as the answer computed anew does.
    listed: tuple[Export, ...] = ()


def live_state(jobs: Iterable[Job]) -> Live:
    """What an answer shows of these jobs that changes in memory between persisted changes:
    the running figures, and a live job's stop (``stopped`` and its end moved to now, set
    while it waits for its last segment)."""
    return tuple((j.status.value, j.progress, j.bytes_written, j.bandwidth_kbps, j.stopped,
                  j.start_us, j.end_us) for j in jobs)


def _jobs(listed: Iterable[Export]) -> list[Job]:
    return [j for e in listed for j in e.jobs]


class StatusListCache:
    """Cached status answers, validated on every request (see module doc)."""

    def __init__(self, max_entries: int = MAX_ENTRIES,
                 max_fragments: int = MAX_FRAGMENTS) -> None:
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        self._max = max_entries
        self._fragments: OrderedDict[FragmentKey, bytes] = OrderedDict()
        self._max_fragments = max_fragments
        #: The answer being computed per key (with the version it is for): requests that
        #: arrive meanwhile wait for it instead of computing the same answer again.
        self._inflight: dict[Key, tuple[int, asyncio.Future[bytes | None]]] = {}
        self.hits = 0
        self.misses = 0
        self.rerenders = 0

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
            body = self._current(key, version)
            if body is not None:
                ctx.app[ENGINE].touch(self._entries[key].listed)
                return xml_response(body)
            if export_id is not None:
                return await self._by_id(ctx, handler, key, version)
            return await self._list(ctx, handler, key, version)

        return cached

    def _current(self, key: Key, version: int) -> bytes | None:
        """The answer for ``key`` at ``version`` without asking the handler, if it can be had:
        the stored bytes, or the same exports rendered again when only live state moved."""
        entry = self._entries.get(key)
        if entry is None or entry.version != version:
            return None
        self._entries.move_to_end(key)
        live = live_state(_jobs(entry.listed))
        if live == entry.live:
            self.hits += 1
            return entry.body
        self.rerenders += 1
        body = self.render(entry.result)
        self._entries[key] = replace(entry, live=live, body=body)
        return body

    async def _list(self, ctx: CommandContext, handler: Handler, key: Key,
                    version: int) -> object:
        """The list from the handler, one computation per key and version at a time."""
        running = self._inflight.get(key)
        if running is not None and running[0] == version:
            body = await asyncio.shield(running[1])
            if body is not None:
                self.hits += 1
                return xml_response(body)
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = (version, future)
        try:
            result = await handler(ctx)
            if not isinstance(result, ExportStatusList):
                return result
            self.misses += 1
            body = self._keep(key, version, result)
            future.set_result(body)
            return xml_response(body)
        finally:
            if not future.done():
                future.set_result(None)  # failed: the waiters ask for themselves
            if self._inflight.get(key, (0, None))[1] is future:
                del self._inflight[key]

    async def _by_id(self, ctx: CommandContext, handler: Handler, key: Key,
                     version: int) -> object:
        """Status by id from the handler; kept when the export has finished."""
        result = await handler(ctx)
        if not isinstance(result, ExportStatusList):
            return result
        if all(e.finished_us is not None for e in result.exports):
            self.misses += 1
            return xml_response(self._keep(key, version, result))
        return xml_response(self.render(result))

    def _keep(self, key: Key, version: int, result: ExportStatusList) -> bytes:
        """Render ``result`` and keep it as the answer for ``key`` at ``version``."""
        body = self.render(result)
        listed = tuple(e for e in result.exports if e.finished_us is None)
        self._entries[key] = _Entry(version, result, live_state(_jobs(listed)), body, listed)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return body

    def render(self, result: ExportStatusList) -> bytes:
        """The success document of ``result``, finished exports' elements from the memo."""
        return render.wrap_success(exports_bytes(result, self._fragment))

    def _fragment(self, export: Export) -> bytes:
        """An export's ``<export>``; a finished one's is kept (see module doc)."""
        if export.finished_us is None:
            return export_bytes(export)
        key: FragmentKey = (export.export_id, export.finished_us, export.expires_us,
                            export.held, *((j.status, j.stopped) for j in export.jobs))
        data = self._fragments.get(key)
        if data is not None:
            self._fragments.move_to_end(key)
            return data
        data = self._fragments[key] = export_bytes(export)
        while len(self._fragments) > self._max_fragments:
            self._fragments.popitem(last=False)
        return data


def with_status_cache(commands: Iterable[Command], cache: StatusListCache) -> list[Command]:
    """The commands, with ``getExportVideoStatus`` answering through ``cache``."""
    return [replace(c, handler=cache.wrap(c.handler)) if c.name.lower() == COMMAND else c
            for c in commands]


STATUS_CACHE = web.AppKey("status_cache", StatusListCache)
