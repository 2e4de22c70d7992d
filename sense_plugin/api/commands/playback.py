"""getPlayback (ext): a recorded range played in the browser, without making an export.

``getPlayback&deviceid=D&starttime=S&endtime=E`` answers a fragmented MP4 stream copy of the
range (``video/mp4``), starting at the keyframe at or before S; ``X-First-Frame-Time`` names the
archive time of the video's time 0, so a player shows the archive time of any frame (a HEAD
request answers only that header: a page asks it before it plays). The span
is bounded like an export's (``export.max_span_s``); the permission is ``view``. The cut runs
on a thread of its own, one per playback (at most :data:`MAX_PLAYBACKS` at once), handing
chunks to the loop; the client's pace holds it back. Reference: ``docs/page.rst``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass

from aiohttp import web

from sense_plugin.api.commands.devices import check_server, find_device
from sense_plugin.api.keys import ARCHIVE, CONFIG, ENGINE
from sense_plugin.api.registry import Command, CommandContext
from sense_plugin.api.streaming import disconnect, write_block
from sense_plugin.api.users import VIEW
from sense_plugin.errors import (
    DeviceNotActiveError,
    GeneralError,
    MediaError,
    NoDeviceError,
    NoRecordError,
    NoServerError,
    OutOfRangeError,
    QueueFullError,
)
from sense_plugin.export.nearest import nothing_at
from sense_plugin.media.cutspec import CutCancelled, SourceSegment
from sense_plugin.media.playback import ChunkSink, stream_range
from sense_plugin.timestamps import format_timestamp

log = logging.getLogger(__name__)
#: The audit trail's hook: one INFO record per playback started (action ``play``).
audit_log = logging.getLogger("sense_plugin.audit.play")
#: Playbacks at once, per server process: each holds a thread while its client watches.
MAX_PLAYBACKS = 8
#: Chunks waiting for the client: bounds the memory one slow viewer holds (64 KiB each).
QUEUE_CHUNKS = 16
#: How often a waiting cut thread looks whether its viewer has gone.
PUT_POLL_S = 0.5
_SLOTS = threading.BoundedSemaphore(MAX_PLAYBACKS)


@dataclass(frozen=True)
class Chunk:
    """A piece of the stream; ``first_frame_us``: archive time of the video's time 0."""

    first_frame_us: int
    data: bytes


@dataclass(frozen=True)
class Ended:
    """The cut finished (``error`` None) or failed before or while streaming."""

    error: BaseException | None = None


async def record_play(ctx: CommandContext, device_id: int, start_us: int, end_us: int) -> None:
    """The one place a playback is recorded: a ``play`` audit record (no export id) naming
    the device and range, by the caller; and one INFO line."""
    detail = (f"deviceid={device_id} start={format_timestamp(start_us)} "
              f"end={format_timestamp(end_us)}")
    audit_log.info("play user=%s address=%s %s", ctx.user.name or "-",
                   ctx.request.remote or "-", detail)
    await ctx.app[ENGINE].custody.record("play", None, detail)


async def get_playback(ctx: CommandContext) -> web.StreamResponse:
    """Stream ``[starttime, endtime)`` of ``deviceid`` as fragmented MP4."""
    config, params = ctx.app[CONFIG], ctx.params
    check_server(config, params.u64("serverid", NoServerError))
    device = find_device(config, params.u64("deviceid", NoDeviceError, required=True) or 0)
    if not device.enabled:
        raise DeviceNotActiveError(f"device {device.device_id} ({device.name}) is disabled")
    start_us = params.timestamp("starttime", required=True) or 0
    end_us = params.timestamp("endtime", required=True) or 0
    if end_us <= start_us:
        raise OutOfRangeError("endtime must be after starttime")
    max_span_s = config.export.max_span_s
    if end_us - start_us > max_span_s * 1_000_000:
        raise OutOfRangeError(f"the range spans {(end_us - start_us) / 1e6:g} s; at most "
                              f"{max_span_s} s may be played at once (export.max_span_s)")
    archive = ctx.app[ARCHIVE]
    segments = await archive.segments(device.device_id, start_us, end_us)
    if not segments:
        raise NoRecordError(await nothing_at(archive, device.device_id, start_us))
    sources = tuple(SourceSegment(s.path_text, s.start_us, s.end_us) for s in segments)
    if not _SLOTS.acquire(blocking=False):
        raise QueueFullError(f"{MAX_PLAYBACKS} playbacks are running; try again shortly")
    feed = _Feed(asyncio.get_running_loop())
    thread = threading.Thread(target=feed.produce, name="playback", daemon=True,
                              args=(sources, start_us, end_us, device.name))
    thread.start()
    try:
        first = await feed.get()
        if isinstance(first, Ended):  # failed before the first byte: a coded answer
            raise _coded(first.error)
        headers = {"Content-Type": "video/mp4", "Cache-Control": "no-store",
                   "X-First-Frame-Time": format_timestamp(first.first_frame_us)}
        if ctx.request.method == "HEAD":  # where the video's time 0 lies, without the video
            return web.Response(headers=headers)
        await record_play(ctx, device.device_id, start_us, end_us)
        return await _send(ctx.request, web.StreamResponse(headers=headers), feed, first,
                           config.export.download_write_timeout_s)
    finally:
        feed.gone.set()
        _SLOTS.release()


def _coded(error: BaseException | None) -> BaseException:
    """What a cut that failed before its first byte answers (a bug: -18 with an incident)."""
    if error is None:
        return NoRecordError("no recorded video in the requested range")
    if isinstance(error, MediaError):
        return GeneralError(f"the range cannot be played: {error}")
    return error


async def _send(request: web.Request, response: web.StreamResponse, feed: _Feed, first: Chunk,
                timeout_s: float) -> web.StreamResponse:
    never = asyncio.Event()
    await response.prepare(request)
    item: Chunk | Ended = first
    try:
        while isinstance(item, Chunk):
            why = await write_block(response, item.data, never, timeout_s)
            if why:
                log.debug("playback stopped: %s", why)
                disconnect(request)
                return response
            item = await feed.get()
        if item.error is not None:  # the body so far is all there is; cut it short
            log.warning("playback failed while streaming: %s", item.error)
            disconnect(request)
            return response
        await response.write_eof()
    except ConnectionError as exc:  # the viewer went away: normal for players
        log.debug("playback: client disconnected (%s)", exc)
        disconnect(request)
    return response


class _Feed:
    """Chunks from the cut thread to the loop, at most :data:`QUEUE_CHUNKS` waiting."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._queue: asyncio.Queue[Chunk | Ended] = asyncio.Queue()
        self._room = threading.Semaphore(QUEUE_CHUNKS)
        self.gone = threading.Event()

    async def get(self) -> Chunk | Ended:
        item = await self._queue.get()
        self._room.release()
        return item

    def produce(self, sources: tuple[SourceSegment, ...], start_us: int, end_us: int,
                title: str) -> None:
        """The cut thread: stream the range, then say how it ended."""
        try:
            stream_range(sources, start_us, end_us, ChunkSink(self.deliver), title=title)
            self._put(Ended())
        except CutCancelled:
            pass
        except Exception as exc:  # typed errors go to the client; a bug is logged there
            self._put(Ended(exc))

    def deliver(self, first_frame_us: int, data: bytes) -> bool:
        return self._put(Chunk(first_frame_us, data))

    def _put(self, item: Chunk | Ended) -> bool:
        """Wait for room in the queue; False once the viewer has gone."""
        while not self.gone.is_set():
            if self._room.acquire(timeout=PUT_POLL_S):
                try:
                    self.loop.call_soon_threadsafe(self._queue.put_nowait, item)
                except RuntimeError:  # the loop has closed
                    return False
                return True
        return False


COMMANDS = (Command("getPlayback", get_playback, VIEW, read_only=True),)
