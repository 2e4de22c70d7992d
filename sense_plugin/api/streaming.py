"""Sending a download's bytes: paced by the client, stopped on removal or a write timeout.

Bytes are read in the I/O executor, never on the loop. A client that accepts no data for the
write timeout, or whose export is removed, is disconnected; one that goes away is a DEBUG
line (players and browsers drop downloads on every seek), never an incident.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass

from aiohttp import web

from sense_plugin.api.keys import EXECUTOR

log = logging.getLogger(__name__)
READ_BYTES = 256 * 1024


@dataclass(frozen=True)
class OpenFile:
    """A file opened for serving: descriptor, size, validators."""

    name: str
    fd: int
    size: int
    etag: str
    mtime_s: int


@dataclass
class Sending:
    """One download in flight: where to write, what, and when to give up."""

    request: web.Request
    opened: OpenFile
    stop: asyncio.Event
    timeout_s: float


async def stream(sending: Sending, status: int, headers: dict[str, str],
                 first: int, last: int) -> web.StreamResponse:
    """Send bytes [first, last] read in the I/O executor, never on the loop (HEAD: none)."""
    request, opened = sending.request, sending.opened
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = max(0, last - first + 1)
    try:
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        loop = asyncio.get_running_loop()
        executor = request.app[EXECUTOR]
        offset = first
        while offset <= last:
            count = min(READ_BYTES, last - offset + 1)
            data = await loop.run_in_executor(executor, os.pread, opened.fd, count, offset)
            if not data:
                break  # truncated under us: the client sees a short body and can resume
            why = await _send(sending, response, data)
            if why:
                log.info("download of %s stopped after %d bytes: %s", opened.name,
                         offset - first, why)
                disconnect(request)
                return response
            offset += len(data)
        await response.write_eof()
    except ConnectionError as exc:  # the client went away: normal for players and browsers
        log.debug("download of %s: client disconnected (%s)", opened.name, exc)
        disconnect(request)
    return response


async def _send(sending: Sending, response: web.StreamResponse, data: bytes) -> str:
    return await write_block(response, data, sending.stop, sending.timeout_s)


async def write_block(response: web.StreamResponse, data: bytes, stop: asyncio.Event,
                      timeout_s: float) -> str:
    """Write one block; a reason to stop ("" when written): removed export or write timeout.

    A ``ConnectionError`` (the client went away) goes to the caller.
    """
    if stop.is_set():
        return "the export was removed"
    write = asyncio.ensure_future(response.write(data))
    write.add_done_callback(_retrieve)  # a write abandoned below may still fail: not an error
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((write, stopped), timeout=timeout_s,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if write.done():
        write.result()
        return ""
    write.cancel()
    if stop.is_set():
        return "the export was removed"
    return f"the client accepted no data for {timeout_s:g} s"


def _retrieve(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()


def disconnect(request: web.Request) -> None:
    """Close the client's connection (a body cut short must not look complete)."""
    if request.transport is not None:
        request.transport.close()


