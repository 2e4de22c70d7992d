"""getSnapshot (ext): the frame shown at an instant, answered directly as an image.

The fetch path of the web page's preview: small (``width`` scales it), and cacheable, since
a recorded frame never changes (ETag from device, frame time, size and format).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from sense_plugin.api.commands.devices import check_server, find_device
from sense_plugin.api.keys import ARCHIVE, CONFIG, EXECUTOR
from sense_plugin.api.registry import Command, CommandContext
from sense_plugin.api.users import VIEW
from sense_plugin.errors import (
    DeviceNotActiveError,
    NoDeviceError,
    NoRecordError,
    NoServerError,
    OutOfRangeError,
    quote_input,
)
from sense_plugin.evidence.options import MIN_WIDTH, RenderOptions
from sense_plugin.export.nearest import nothing_at
from sense_plugin.export.newest import open_segment
from sense_plugin.export.planning import newest_sources
from sense_plugin.media.cutspec import SourceSegment
from sense_plugin.media.snapshot import IMAGE_FORMATS, grab, grab_newest, segment_at
from sense_plugin.timestamps import GAP_TOLERANCE_US, format_timestamp, now_us

MAX_WIDTH = 7680
FORMAT_ALIASES = {"jpg": "jpg", "jpeg": "jpg", "png": "png"}


async def get_snapshot(ctx: CommandContext) -> web.StreamResponse:
    """``getSnapshot&deviceid=&time=[&width=][&format=jpg|png]``; no ``time``: the newest."""
    config, params = ctx.app[CONFIG], ctx.params
    check_server(config, params.u64("serverid", NoServerError))
    device = find_device(config, params.u64("deviceid", NoDeviceError, required=True) or 0)
    if not device.enabled:
        raise DeviceNotActiveError(f"device {device.device_id} ({device.name}) is disabled")
    fmt_text = params.text("format") or "jpg"
    fmt = FORMAT_ALIASES.get(fmt_text.lower())
    if fmt is None:
        raise OutOfRangeError(f"format '{quote_input(fmt_text, 20)}' is not one of jpg, png")
    width = params.integer("width", minimum=MIN_WIDTH, maximum=MAX_WIDTH)
    archive = ctx.app[ARCHIVE]
    instant_us = params.timestamp("time")
    # a recorded frame never changes; "the newest" does (revalidated with the ETag)
    cache = "private, max-age=86400" if instant_us is not None else "no-cache"
    options = RenderOptions(width=width) if width is not None else None
    loop = asyncio.get_running_loop()
    growing = await open_segment(archive, device.device_id) if instant_us is None else None
    if instant_us is None and growing is None:  # the newest frame of the archive
        recorded = await archive.recorded_range(device.device_id)
        if recorded is None:
            raise NoRecordError(f"nothing is recorded for device {device.device_id}")
        instant_us = recorded[1] - 1
    if instant_us is None:  # the newest frame, of the segment being recorded
        newest, _ = await newest_sources(archive, device.device_id, now_us())
        sources = tuple(SourceSegment(s.path_text, s.start_us, s.end_us) for s in newest)
        snap = await loop.run_in_executor(ctx.app[EXECUTOR], grab_newest, sources, fmt,
                                          options)
    else:
        # a hole under the gap tolerance is no gap: the frame before it (media/snapshot.py)
        segments = await archive.segments(device.device_id, instant_us - GAP_TOLERANCE_US,
                                          instant_us + GAP_TOLERANCE_US + 1)
        if segment_at(segments, instant_us) is None:
            segments = []
        if not segments:
            raise NoRecordError(await nothing_at(archive, device.device_id, instant_us))
        sources = tuple(SourceSegment(s.path_text, s.start_us, s.end_us) for s in segments)
        snap = await loop.run_in_executor(ctx.app[EXECUTOR], grab, sources, instant_us, fmt,
                                          options)
    etag = f'"{device.device_id}-{snap.frame_us}-{snap.width}x{snap.height}-{fmt}"'
    headers = {"ETag": etag, "Cache-Control": cache,
               "X-Frame-Time": format_timestamp(snap.frame_us),
               "Content-Disposition": "inline; filename="
               f"\"{device.name}_{device.device_id}_{snap.frame_us}{IMAGE_FORMATS[fmt][2]}\""}
    if etag in ctx.request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=snap.data, content_type=snap.content_type, headers=headers)


COMMANDS = (Command("getSnapshot", get_snapshot, VIEW, read_only=True),)
