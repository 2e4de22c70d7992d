"""The accept loop: never more sockets than the connection cap allows, whatever the clients do.

asyncio's own server accepts up to ``backlog`` sockets per wake-up and only then asks the
protocol factory, so a flood overshoots any cap by a few bursts and runs into ``EMFILE``. This
loop decides per socket, right after ``accept()``: hand it to aiohttp, make room by evicting the
connection idle the longest, or answer 503 and close it at once (before reading anything).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl

from sense_plugin.api.connections import ConnectionGate, refusal_bytes

log = logging.getLogger("sense_plugin.api.connections")
BACKLOG = 128
#: Sockets accepted per wake-up (then the loop serves others before accepting more).
ACCEPT_BATCH = 32
#: After ``EMFILE``/``ENFILE``/``ENOBUFS`` from accept(): pause accepting this long.
ACCEPT_PAUSE_S = 0.5
OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


def bind(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for every address of ``host`` (raises OSError)."""
    sockets: list[socket.socket] = []
    seen = set()
    try:
        for family, kind, proto, _, address in socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE):
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class Listener:
    """Accepts on ``sockets`` and passes each connection through ``gate``."""

    def __init__(self, sockets: list[socket.socket], gate: ConnectionGate,
                 ssl_context: ssl.SSLContext | None, handshake_timeout_s: float) -> None:
        self._sockets = sockets
        self._gate = gate
        self._ssl = ssl_context
        self._handshake_timeout_s = handshake_timeout_s if ssl_context else None
        self._tasks: set[asyncio.Task[object]] = set()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in self._sockets:
            loop.add_reader(sock.fileno(), self._accept, sock)

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in self._sockets:
            loop.remove_reader(sock.fileno())
            sock.close()

    def _accept(self, sock: socket.socket) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in OUT_OF_RESOURCES:
                    self._pause(sock, exc)
                    return
                log.warning("accept() failed: %s", exc)
                continue
            if not self._gate.admit():
                _refuse(conn, plain_http=self._ssl is None)
                continue
            conn.setblocking(False)
            self._hand_over(conn)

    def _hand_over(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        task = loop.create_task(loop.connect_accepted_socket(
            self._gate, conn, ssl=self._ssl, ssl_handshake_timeout=self._handshake_timeout_s))
        self._tasks.add(task)
        task.add_done_callback(self._handed_over)

    def _handed_over(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.info("connection setup failed: %s", task.exception())

    def _pause(self, sock: socket.socket, exc: OSError) -> None:
        log.error("accept() out of resources, pausing %g s: %s", ACCEPT_PAUSE_S, exc)
        loop = asyncio.get_running_loop()
        loop.remove_reader(sock.fileno())
        loop.call_later(ACCEPT_PAUSE_S, self._resume, sock)

    def _resume(self, sock: socket.socket) -> None:
        if sock.fileno() >= 0:
            asyncio.get_running_loop().add_reader(sock.fileno(), self._accept, sock)


def _refuse(conn: socket.socket, *, plain_http: bool) -> None:
    """503 in XML, best effort and without blocking, then close (the descriptor is free now)."""
    try:
        conn.setblocking(False)
        if plain_http:  # a TLS client would only see garbage before its handshake
            conn.send(refusal_bytes())
    except OSError:
        pass
    finally:
        conn.close()
