"""getSnapshot (ext): the frame shown at an instant, answered directly as an image.

The fetch path of the web page's preview: small (``width`` scales it), and cacheable, since
a recorded frame never changes. The ETag names what the answer is made from (the segments and
the instant, or the state of the file being recorded, and the width and format), so it is known
before anything is decoded: a revalidation that matches costs no decode. Decoding runs on the
snapshot pool (:mod:`sense_plugin.api.snapshotpool`), bounded in total and per user.
"""

from __future__ import annotations

import hashlib
import os
import re

from aiohttp import web

from sense_plugin.api.commands.devices import check_server, find_device
from sense_plugin.api.keys import ARCHIVE, CONFIG, SNAPSHOT_POOL
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
from sense_plugin.export.nearest import nothing_at
from sense_plugin.export.newest import open_segment
from sense_plugin.export.planning import newest_sources
from sense_plugin.media.cutspec import SourceSegment
from sense_plugin.media.renderoptions import MIN_WIDTH, RenderOptions
from sense_plugin.media.snapshot import IMAGE_FORMATS, Snapshot, grab, grab_newest, segment_at
from sense_plugin.timestamps import GAP_TOLERANCE_US, format_timestamp, now_us

MAX_WIDTH = 7680
FORMAT_ALIASES = {"jpg": "jpg", "jpeg": "jpg", "png": "png"}
#: One entity tag of an ``If-None-Match`` list: optional weakness prefix, quoted opaque value.
ENTITY_TAG = re.compile(r'\s*(?:W/)?("[\x21\x23-\x7e\x80-\xff]*")\s*(?:,|$)')


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
    pool, user = ctx.app[SNAPSHOT_POOL], ctx.user.name
    wanted = (str(device.device_id), str(width or 0), fmt)
    matches = ctx.request.headers.get("If-None-Match")
    growing = await open_segment(archive, device.device_id) if instant_us is None else None
    if instant_us is None and growing is None:  # the newest frame of the archive
        recorded = await archive.recorded_range(device.device_id)
        if recorded is None:
            raise NoRecordError(f"nothing is recorded for device {device.device_id}")
        instant_us = recorded[1] - 1
    if instant_us is None:  # the newest frame, of the segment being recorded
        newest, _ = await newest_sources(archive, device.device_id, now_us())
        sources = tuple(SourceSegment(s.path_text, s.start_us, s.end_us) for s in newest)
        etag, snap = await pool.run(user, _newest_unless_unchanged, sources, fmt, options,
                                    wanted, matches)
    else:
        # a hole under the gap tolerance is no gap: the frame before it (media/snapshot.py)
        segments = await archive.segments(device.device_id, instant_us - GAP_TOLERANCE_US,
                                          instant_us + GAP_TOLERANCE_US + 1)
        if segment_at(segments, instant_us) is None:
            segments = []
        if not segments:
            raise NoRecordError(await nothing_at(archive, device.device_id, instant_us))
        sources = tuple(SourceSegment(s.path_text, s.start_us, s.end_us) for s in segments)
        etag = entity_tag(*wanted, str(instant_us),
                          *(f"{s.path}|{s.start_us}|{s.end_us}" for s in sources))
        snap = None if matched(matches, etag) else await pool.run(
            user, grab, sources, instant_us, fmt, options)
    headers = {"ETag": etag, "Cache-Control": cache}
    if snap is None:
        return web.Response(status=304, headers=headers)
    headers["X-Frame-Time"] = format_timestamp(snap.frame_us)
    headers["Content-Disposition"] = ("inline; filename=" f"\"{device.name}_{device.device_id}_"
                                      f"{snap.frame_us}{IMAGE_FORMATS[fmt][2]}\"")
    return web.Response(body=snap.data, content_type=snap.content_type, headers=headers)


def entity_tag(*parts: str) -> str:
    """A strong entity tag naming everything the image is made from."""
    return '"' + hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32] + '"'


def matched(header: str | None, etag: str) -> bool:
    """``If-None-Match`` holds ``*`` or an entity tag equal to ``etag`` (weak comparison).

    The header is parsed as the list of entity tags it is; one that is not well formed makes
    the whole header count as no match (the image is sent).
    """
    if header is None:
        return False
    if header.strip() == "*":
        return True
    tags, at = [], 0
    while at < len(header):
        found = ENTITY_TAG.match(header, at)
        if found is None or found.end() == at:
            return False
        tags.append(found.group(1))
        at = found.end()
    return etag in tags


def _newest_unless_unchanged(sources: tuple[SourceSegment, ...], fmt: str,
                             options: RenderOptions | None, wanted: tuple[str, ...],
                             matches: str | None) -> tuple[str, Snapshot | None]:
    """On a snapshot thread: the tag of the newest frame's sources as they are on disk (a
    file still being recorded changes size), and the image unless the client has it."""
    states = []
    for source in sources:
        try:
            stat = os.stat(source.path)
            states.append(f"{source.path}|{source.start_us}|{stat.st_size}|{stat.st_mtime_ns}")
        except OSError:
            states.append(f"{source.path}|gone")
    etag = entity_tag(*wanted, "newest", *states)
    return etag, None if matched(matches, etag) else grab_newest(sources, fmt, options)


COMMANDS = (Command("getSnapshot", get_snapshot, VIEW, read_only=True),)
