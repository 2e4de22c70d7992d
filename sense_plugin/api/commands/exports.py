"""Export commands (docs/protocol.rst): exportVideo create/remove/retry, getExportVideoStatus."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from lxml import etree

from sense_plugin.api.commands.custody import hold_or_release
from sense_plugin.api.commands.devices import check_server, find_device
from sense_plugin.api.exportopts import keepalive_given, parse_options
from sense_plugin.api.keys import ARCHIVE, CONFIG, ENGINE
from sense_plugin.api.registry import Command, CommandContext
from sense_plugin.api.rendersize import check_render_width
from sense_plugin.api.results import ExportChanged, ExportCreated, ExportStatusList
from sense_plugin.api.users import EXPORT, VIEW
from sense_plugin.cluster.keys import SITE
from sense_plugin.config import Config
from sense_plugin.errors import (
    DeviceNotActiveError,
    InvalidExportIdError,
    MissingParameterError,
    NoDeviceError,
    NoRecordError,
    NoServerError,
    OutOfRangeError,
)
from sense_plugin.export.model import DeviceRange, ExportRequest, Status
from sense_plugin.export.nearest import nothing_at
from sense_plugin.export.storage import ExportQuery
from sense_plugin.media.exportoptions import ExportOptions
from sense_plugin.params import parse_int, parse_u64
from sense_plugin.timestamps import format_timestamp, now_us, parse_timestamp
from sense_plugin.xmlin import child_text, parse_body

if TYPE_CHECKING:
    from sense_plugin.cluster.nodes import SiteDevice

MAX_BANDWIDTH_KBPS = 100_000_000
MAX_NAME_CHARS = 200
MAX_PAGE = 1000
ACTIONS = ("remove", "retry", "stop", "hold", "release")


async def export_video(ctx: CommandContext) -> ExportCreated | ExportChanged:
    """Create an export from the XML body, or remove/retry one (body or query form)."""
    action = ctx.params.text("action")
    if action is not None:
        return await _act(ctx, action, ctx.params.text("exportid", required=True) or "")
    document = parse_body(ctx.body, "export")
    action = child_text(document, "action")
    if action is not None:
        return await _act(ctx, action, child_text(document, "exportid", required=True) or "")
    site = ctx.app.get(SITE)
    elsewhere = ({d.device_id: d for d in await site.devices()
                  if d.server_id != ctx.app[CONFIG].server.server_id}
                 if site is not None else {})
    request = parse_export(document, ctx.app[CONFIG], recorded_live(ctx), elsewhere)
    await check_render_width(request, ctx.app[ARCHIVE], ctx.app[ENGINE].run_io)
    if request.options.snapshot and not request.options.live:
        await _check_shown(ctx, request)
    export = await ctx.app[ENGINE].create(request, ctx.user.name)
    return ExportCreated(export.export_id)


async def _check_shown(ctx: CommandContext, request: ExportRequest) -> None:
    """-9 naming the nearest recorded times when a snapshot instant lies in a gap."""
    archive = ctx.app[ARCHIVE]
    for device in request.devices:
        instant = device.start_us
        segments = await archive.segments(device.device_id, instant, instant + 1)
        if not any(s.start_us <= instant < s.end_us for s in segments):
            raise NoRecordError(await nothing_at(archive, device.device_id, instant))


def recorded_live(ctx: CommandContext) -> frozenset[int]:
    """The devices this server records as they go (a source, or a live demo camera)."""
    config = ctx.app[CONFIG]
    sources = {d.device_id for d in config.devices if d.enabled and d.source}
    return frozenset(sources) | ctx.app[ARCHIVE].live_demo_ids


async def _act(
    ctx: CommandContext, action: str, export_id_text: str
) -> ExportCreated | ExportChanged:
    export_id = parse_export_id(export_id_text)
    engine = ctx.app[ENGINE]
    user = ctx.user
    match action.lower():
        case "remove":
            export = await engine.remove(export_id, user.name, user.is_admin)
            return ExportChanged(export.export_id, export.status)
        case "retry":
            export = await engine.retry(export_id, user.name, user.is_admin)
            return ExportCreated(export.export_id)
        case "stop":
            export = await engine.stop(export_id, user.name, user.is_admin)
            return ExportChanged(export.export_id, export.status)
        case "hold" | "release":  # evidence holds (api/commands/custody.py)
            return await hold_or_release(ctx, action.lower(), export_id)
    raise OutOfRangeError(f"action '{action[:40]}' is not one of {', '.join(ACTIONS)}")


async def get_export_video_status(ctx: CommandContext) -> ExportStatusList:
    """One export by id, or every visible export (optionally filtered and paged)."""
    engine = ctx.app[ENGINE]
    user = ctx.user
    params = ctx.params
    export_id_text = params.text("exportid")
    if export_id_text is not None:
        export = await engine.get(parse_export_id(export_id_text), user.name, user.is_admin)
        return ExportStatusList((export,))
    status_text = params.text("status")
    statuses = _parse_statuses(status_text) if status_text else None
    limit = params.integer("limit", minimum=1, maximum=MAX_PAGE)
    offset = params.integer("offset", minimum=0, maximum=2**62)
    paged = limit is not None or offset is not None
    query = ExportQuery(statuses=statuses, newest_first=paged, offset=offset or 0,
                        limit=(limit or MAX_PAGE) if paged else None)
    exports, total = await engine.page(user.name, user.is_admin, query)
    return ExportStatusList(tuple(exports), total=total if paged else None)


def parse_export_id(text: str) -> int:
    """An export id: a positive integer, else -57."""
    export_id = parse_u64(text.strip(), "exportid", InvalidExportIdError)
    if export_id == 0:
        raise InvalidExportIdError("exportid 0 is not known")
    return export_id


def parse_export(document: etree._Element, config: Config,
                 recorded: frozenset[int] = frozenset(),
                 elsewhere: Mapping[int, SiteDevice] | None = None) -> ExportRequest:
    """Validate a create request completely; the first problem found is raised.

    ``recorded``: the devices this server records live (a source or the live demo), the only
    ones a live export may follow. ``elsewhere``: on a site, the devices of the other
    servers (deviceid → device); their jobs run where they are.
    """
    devices_element = document.find("devices")
    if devices_element is None:
        raise MissingParameterError("missing element <devices> in <export>")
    device_elements = devices_element.findall("device")
    if not device_elements:
        raise MissingParameterError("<devices> must contain at least one <device>")
    limit = config.export.max_devices_per_export
    if len(device_elements) > limit:
        raise OutOfRangeError(f"{len(device_elements)} devices requested; at most {limit} allowed")
    options, fmt = parse_options(document, config)
    now = now_us()
    devices = tuple(_parse_device(d, i + 1, config, options, recorded, now, elsewhere or {})
                    for i, d in enumerate(device_elements))
    if options.live and not options.snapshot and all(d.end_us <= now for d in devices):
        # every endtime already past: an ordinary archive export (docs/exports.rst)
        keepalive = options.keepalive_s if keepalive_given(document) else 0
        options = replace(options, mode="archive", keepalive_s=keepalive)
    bandwidth_text = child_text(document, "bandwidth")
    bandwidth = (
        0
        if bandwidth_text is None
        else parse_int(bandwidth_text, "bandwidth", 0, MAX_BANDWIDTH_KBPS)
    )
    name = child_text(document, "name") or ""
    if len(name) > MAX_NAME_CHARS:
        raise OutOfRangeError(f"name is longer than {MAX_NAME_CHARS} characters")
    return ExportRequest(
        devices=devices,
        path=child_text(document, "path") or "",
        bandwidth_kbps=bandwidth,
        fmt=fmt,
        name=name,
        options=options,
    )


def _parse_device(element: etree._Element, number: int, config: Config,
                  options: ExportOptions, recorded: frozenset[int], now: int,
                  elsewhere: Mapping[int, SiteDevice]) -> DeviceRange:
    server_text = child_text(element, "serverid")
    server_id = config.server.server_id
    if server_text is not None:
        server_id = parse_u64(server_text, f"device #{number} serverid", NoServerError)
    device_text = child_text(element, "deviceid", required=True) or ""
    device_id = parse_u64(device_text, f"device #{number} deviceid", NoDeviceError)
    remote = elsewhere.get(device_id)
    if remote is not None and (server_text is None or server_id == remote.server_id):
        return _remote_device(element, remote, options, config)
    check_server(config, server_id)
    device = find_device(config, device_id)
    if not device.enabled:
        raise DeviceNotActiveError(f"device {device.device_id} ({device.name}) is disabled")
    label = f"device {device.device_id}"
    if options.snapshot:
        if options.live:
            _check_recorded(device.device_id, device.name, recorded)
        return _snapshot_range(element, server_id, device.device_id, options, now)
    start_text = child_text(element, "starttime", required=not options.live)
    start_us = now if start_text is None else parse_timestamp(start_text, f"{label} starttime")
    end_text = child_text(element, "endtime", required=not options.live)
    if options.live:
        if start_us > now:
            raise OutOfRangeError(f"{label}: starttime {format_timestamp(start_us)} is in the "
                                  "future (a live export starts at the latest now)")
        latest = now + config.export.max_live_s * 1_000_000
        end_us = latest if end_text is None else parse_timestamp(end_text, f"{label} endtime")
        if end_us > latest:
            raise OutOfRangeError(
                f"{label}: endtime {format_timestamp(end_us)} is more than max_live_s = "
                f"{config.export.max_live_s} s after now")
        _check_range(device.device_id, start_us, end_us, config, allow_future=True)
        if end_us > now:  # a range already over is an ordinary archive range
            _check_recorded(device.device_id, device.name, recorded)
    else:
        end_us = parse_timestamp(end_text or "", f"{label} endtime")
        _check_range(device.device_id, start_us, end_us, config)
    return DeviceRange(server_id, device.device_id, start_us, end_us)


def _remote_device(element: etree._Element, device: SiteDevice, options: ExportOptions,
                   config: Config) -> DeviceRange:
    """A device of another server of the site: an archive range (a clip) only."""
    label = f"device {device.device_id}"
    if options.live or options.snapshot:
        raise OutOfRangeError(f"{label} ({device.name}) is recorded by server "
                              f"{device.server_id}: only archive clips of it can be exported "
                              "from this server of the site")
    start_us = parse_timestamp(child_text(element, "starttime", required=True) or "",
                               f"{label} starttime")
    end_us = parse_timestamp(child_text(element, "endtime", required=True) or "",
                             f"{label} endtime")
    _check_range(device.device_id, start_us, end_us, config)
    return DeviceRange(device.server_id, device.device_id, start_us, end_us, device.name)


def _check_recorded(device_id: int, name: str, recorded: frozenset[int]) -> None:
    if device_id not in recorded:
        raise OutOfRangeError(
            f"device {device_id} ({name}): mode live needs a device this server records "
            "(a source or a live demo camera); this one only has an archive")


def _snapshot_range(element: etree._Element, server_id: int, device_id: int,
                    options: ExportOptions, now: int) -> DeviceRange:
    """A snapshot's instant: ``starttime`` (archive) or now (live); ``endtime`` ignored."""
    label = f"device {device_id}"
    start_text = child_text(element, "starttime", required=not options.live)
    if options.live or start_text is None:
        return DeviceRange(server_id, device_id, now, now)
    instant = parse_timestamp(start_text, f"{label} starttime")
    if instant > now:
        raise OutOfRangeError(f"{label}: snapshot starttime {format_timestamp(instant)} is in "
                              "the future")
    return DeviceRange(server_id, device_id, instant, instant)


def _check_range(device_id: int, start_us: int, end_us: int, config: Config,
                 allow_future: bool = False) -> None:
    if start_us >= end_us:
        raise OutOfRangeError(f"device {device_id}: starttime must be before endtime")
    span_s = (end_us - start_us) / 1_000_000
    if span_s > config.export.max_span_s:
        raise OutOfRangeError(
            f"device {device_id}: span of {span_s:.0f} s exceeds the maximum "
            f"of {config.export.max_span_s} s"
        )
    if end_us > now_us() and not allow_future:
        raise OutOfRangeError(
            f"device {device_id}: endtime {format_timestamp(end_us)} is in the future"
            " (use <mode>live</mode> to follow the recording)"
        )


def _parse_statuses(text: str) -> frozenset[Status]:
    statuses = set()
    for part in text.split(","):
        try:
            statuses.add(Status(part.strip().upper()))
        except ValueError:
            raise OutOfRangeError(
                f"status '{part.strip()[:20]}' is not one of {', '.join(s.value for s in Status)}"
            ) from None
    return frozenset(statuses)


COMMANDS = (
    Command("exportVideo", export_video, EXPORT),
    Command("getExportVideoStatus", get_export_video_status, VIEW, read_only=True),
)
