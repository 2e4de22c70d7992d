"""Run the application on a socket: fd limit, connection cap, idle timeouts, clean stop.

Used by ``sense-plugin serve`` instead of ``web.run_app`` because the protocol handlers come
from :class:`ConnectionGate`. The port is bound *before* the application starts, so a port
that is taken stops the start before the archive, the job store or the workers are touched.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from collections.abc import Callable
from typing import Any

from aiohttp import web

from sense_plugin.api import logthrottle
from sense_plugin.api.connections import ConnectionGate, connection_cap, raise_fd_limit
from sense_plugin.api.listener import Listener, bind
from sense_plugin.configmodel import HttpConfig

log = logging.getLogger(__name__)
SHUTDOWN_TIMEOUT_S = 10.0
LINGER_S = 2.0


class BindError(Exception):
    """The listening socket could not be opened (the message names address and reason)."""


def run_server(app: web.Application, http: HttpConfig,
               ssl_context: ssl.SSLContext | None = None,
               on_ready: Callable[[], None] | None = None) -> None:
    """Serve ``app`` until SIGTERM or SIGINT; raises :class:`BindError` when the port is taken.

    ``on_ready`` is called once the app has started and the port accepts connections.
    """
    asyncio.run(_serve(app, http, ssl_context, on_ready))


async def _serve(app: web.Application, http: HttpConfig, ssl_context: ssl.SSLContext | None,
                 on_ready: Callable[[], None] | None) -> None:
    loop = asyncio.get_running_loop()
    logthrottle.install(loop)
    fd_limit = raise_fd_limit()
    handler_args: dict[str, Any] = {
        "keepalive_timeout": http.idle_timeout_s,  # also closes sockets that never send a request
        "lingering_time": LINGER_S,  # after an early answer, read (and drop) the rest this long
        "access_log": None,
    }
    gate = ConnectionGate(connection_cap(http.max_connections, fd_limit), **handler_args)
    try:
        sockets = bind(http.host, http.port)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise BindError(f"cannot listen on {http.host}:{http.port}: {reason}") from None
    listener = Listener(sockets, gate, ssl_context, http.idle_timeout_s)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S,
                           **handler_args)
    await runner.setup()
    try:
        gate.server = runner.server
        listener.start()
        log.info("accepting up to %d connections (open-files limit %d, idle timeout %g s)",
                 gate.cap, fd_limit, http.idle_timeout_s)
        if on_ready is not None:
            on_ready()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        listener.close()
    finally:
        await runner.cleanup()
