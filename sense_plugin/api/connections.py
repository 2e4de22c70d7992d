"""Connection limits: a cap below the open-file limit, idle ones evicted first, XML for HTTP errors.

``serve`` builds its protocol handlers here instead of letting aiohttp do it, for three reasons:

* a cap on open connections (``http.max_connections``, kept below the file-descriptor limit)
  so idle sockets can never exhaust descriptors the server needs for files and accepts; at the
  cap the connection idle the longest (no request in progress) is closed to make room, and only
  when every connection is busy is the new one answered 503 and closed before reading;
* aiohttp answers malformed HTTP itself (plain-text 400, a traceback in the log each time)
  before any application code runs (aiohttp issues #3287, #9882: no hook); our handler class
  answers those in XML with the security headers and logs one line;
* activity marks, so "idle" means what it says.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import http_exceptions, web

from sense_plugin.api import render
from sense_plugin.api.headers import secure_headers
from sense_plugin.errors import ResultCode

log = logging.getLogger(__name__)
#: Descriptors kept free for files, the job store, worker pipes, threads' libraries ...
FD_BASELINE = 64
#: ... and the evicted connections still closing: at most this many above the cap.
BURST = 64
#: A handler whose connection is not up after this long never will be (TLS handshake failed).
GHOST_S = 120.0
#: Never raise the soft limit beyond this (an "unlimited" hard limit is not a target).
FD_TARGET_MAX = 1 << 20
MALFORMED = {
    http_exceptions.LineTooLong: "request line or header too long",
    http_exceptions.BadHttpMethod: "unknown HTTP method",
    http_exceptions.BadStatusLine: "malformed request line",
    http_exceptions.InvalidHeader: "malformed header",
    http_exceptions.InvalidURLError: "malformed URL",
}


def raise_fd_limit() -> int:
    """Raise the soft open-files limit to the hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = FD_TARGET_MAX if hard == resource.RLIM_INFINITY else min(hard, FD_TARGET_MAX)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return FD_TARGET_MAX if soft == resource.RLIM_INFINITY else soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError) as exc:
        log.warning("cannot raise the open-files limit from %d to %d: %s", soft, target, exc)
        return soft
    log.info("open-files limit raised from %d to %d", soft, target)
    return target


def connection_cap(max_connections: int, fd_limit: int) -> int:
    """Connections allowed: the configured maximum, but always leaving descriptors free."""
    reserve = max(FD_BASELINE + BURST, fd_limit // 4)
    return max(8, min(max_connections, fd_limit - reserve))


class ConnectionGate:
    """Counts connections; the protocol factory for :class:`~sense_plugin.api.listener.Listener`.

    Evicted connections are counted until they are really gone, so at most ``cap + BURST``
    sockets are ever open.
    """

    def __init__(self, cap: int, **handler_args: Any) -> None:
        self.cap = cap
        self.server: web.Server | None = None  # set once the AppRunner is set up
        self._handler_args = handler_args
        self._open: set[GatedRequestHandler] = set()
        self.evicted = self.refused = 0

    def admit(self) -> bool:
        """May one more connection open? Evicts the idlest one at the cap; False to refuse."""
        if len(self._open) < self.cap:
            return True
        self._drop_ghosts()
        if len(self._open) < self.cap + BURST and self._evict_idlest():
            return True
        self.refused += 1
        log.warning("connection refused: %d connections open, none idle", len(self._open))
        return False

    def __call__(self) -> GatedRequestHandler:
        assert self.server is not None, "ConnectionGate.server is not set"
        loop = asyncio.get_running_loop()
        handler = GatedRequestHandler(self, self.server, loop=loop, **self._handler_args)
        self._open.add(handler)
        return handler

    def closed(self, handler: GatedRequestHandler) -> None:
        self._open.discard(handler)

    def _drop_ghosts(self) -> None:
        """Forget handlers whose connection never came up (a failed TLS handshake calls no
        ``connection_made`` and so no ``connection_lost``)."""
        cutoff = time.monotonic() - GHOST_S
        for ghost in [h for h in self._open if not h.made and h.last_active < cutoff]:
            self._open.discard(ghost)

    def _evict_idlest(self) -> bool:
        idle = [h for h in self._open if h.busy == 0 and not h.evicted]
        if not idle:
            return False
        # Established connections first: a socket still being set up is not idle yet.
        victim = min(idle, key=lambda h: (not h.made, h.last_active))
        victim.close_idle()
        self.evicted += 1
        log.warning("connection limit %d reached: closing the connections idle the longest",
                    self.cap)
        return True


class GatedRequestHandler(web.RequestHandler):
    """aiohttp's protocol handler, counted by the gate, answering malformed HTTP in XML."""

    __slots__ = ("_gate", "busy", "evicted", "last_active", "made")

    def __init__(self, gate: ConnectionGate, manager: web.Server, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._gate = gate
        self.busy = 0
        self.last_active = time.monotonic()
        self.evicted = False
        self.made = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made = True
        super().connection_made(transport)
        if self.evicted:  # evicted between accept and now
            transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._gate.closed(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        super().data_received(data)

    def close_idle(self) -> None:
        self.evicted = True
        if self.transport is not None:
            self.transport.close()

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send an error")
        if status >= 500:
            log.error("unexpected error answering %s", request.remote, exc_info=exc)
            code, text = ResultCode.GENERAL_ERROR, f"server error (HTTP {status})"
        else:
            phrase = next((p for cls, p in MALFORMED.items() if isinstance(exc, cls)),
                          "malformed HTTP request")
            log.info("refused a malformed HTTP request from %s: %s", request.remote, phrase)
            code, text = ResultCode.OUT_OF_RANGE, f"{phrase} (HTTP {status})"
        response = web.Response(status=status, body=render.error(code, text),
                                headers=secure_headers({"Content-Type": render.CONTENT_TYPE}))
        response.force_close()
        return response


def refusal_bytes() -> bytes:
    """The whole 503 answer for a connection refused at the cap (XML, security headers)."""
    body = render.error(ResultCode.NOT_AVAILABLE, "too many open connections; retry in a moment")
    headers = secure_headers({"Content-Type": render.CONTENT_TYPE, "Retry-After": "1",
                              "Connection": "close", "Content-Length": str(len(body))})
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"HTTP/1.1 503 Service Unavailable\r\n{head}\r\n".encode() + body


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def mark_busy(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A connection with a request in progress is never the one evicted."""
    protocol = request.protocol
    if not isinstance(protocol, GatedRequestHandler):
        return await handler(request)
    protocol.busy += 1
    try:
        return await handler(request)
    finally:
        protocol.busy -= 1
        protocol.last_active = time.monotonic()
