"""Device and server commands (docs/protocol.rst): lists, options, recorded ranges, recordings."""

from __future__ import annotations

from sense_plugin import __version__
from sense_plugin.api import results as r
from sense_plugin.api.keys import ARCHIVE, CONFIG, ENGINE
from sense_plugin.api.registry import Command, CommandContext
from sense_plugin.api.site.lists import site_device_list, site_diva_list
from sense_plugin.api.users import VIEW
from sense_plugin.cluster.keys import SITE
from sense_plugin.config import Config, DeviceConfig
from sense_plugin.errors import NoDeviceError, NoServerError, OutOfRangeError
from sense_plugin.timestamps import now_us


def check_server(config: Config, server_id: int | None) -> None:
    """Raise -17 unless ``server_id`` is absent or this server's id."""
    if server_id is not None and server_id != config.server.server_id:
        raise NoServerError(f"serverid {server_id} is not known on this system")


def find_device(config: Config, device_id: int) -> DeviceConfig:
    """The configured device ``device_id``, or -2."""
    device = config.device(device_id)
    if device is None:
        raise NoDeviceError(
            f"deviceid {device_id} is not known on server {config.server.server_id}"
        )
    return device


async def get_device_list(ctx: CommandContext) -> r.DeviceList:
    config = ctx.app[CONFIG]
    if SITE in ctx.app:  # a site of several servers: every device of the site (docs/site.rst)
        return await site_device_list(ctx.app[SITE], ctx.params.u64("serverid", NoServerError))
    check_server(config, ctx.params.u64("serverid", NoServerError))
    archive = ctx.app[ARCHIVE]
    return r.DeviceList(
        tuple(
            r.DeviceRow(
                d.name, config.server.server_id, d.device_id, archive.device_status(d.device_id)
            )
            for d in config.devices
        )
    )


async def get_diva_list(ctx: CommandContext) -> r.DivaList:
    config = ctx.app[CONFIG]
    if SITE in ctx.app:
        return await site_diva_list(ctx.app[SITE], ctx.params.u64("serverid", NoServerError))
    check_server(config, ctx.params.u64("serverid", NoServerError))
    return r.DivaList((r.ServerRow(config.server.server_id, config.server.name),))


async def get_server_options(ctx: CommandContext) -> r.ServerOptions:
    config = ctx.app[CONFIG]
    check_server(config, ctx.params.u64("serverid", NoServerError))
    signer = ctx.app[ENGINE].signer
    return r.ServerOptions(
        config.server.server_id,
        config.server.name,
        "sense_plugin",
        __version__,
        len(config.devices),
        config.export.max_span_s,
        signer.public_pem,
        signer.fingerprint,
    )


async def get_server_status(ctx: CommandContext) -> r.ServerStatus:
    config = ctx.app[CONFIG]
    check_server(config, ctx.params.u64("serverid", NoServerError))
    device_id = ctx.params.u64("deviceid", NoDeviceError)
    devices = config.devices if device_id is None else (find_device(config, device_id),)
    archive = ctx.app[ARCHIVE]
    rows = []
    for device in devices:
        recorded = await archive.recorded_range(device.device_id)
        first, last = recorded if recorded else (None, None)
        if last is not None:  # the frame being recorded ends up to a frame after now
            last = min(last, now_us())
        rows.append(r.DeviceRecordedRange(device.device_id, device.name, first, last))
    return r.ServerStatus(config.server.server_id, tuple(rows))


async def get_recordings(ctx: CommandContext) -> r.Recordings:
    config = ctx.app[CONFIG]
    params = ctx.params
    check_server(config, params.u64("serverid", NoServerError))
    device = find_device(config, params.u64("deviceid", NoDeviceError, required=True) or 0)
    archive = ctx.app[ARCHIVE]
    start_us = params.timestamp("starttime")
    end_us = params.timestamp("endtime")
    if start_us is None or end_us is None:
        recorded = await archive.recorded_range(device.device_id)
        start_us = start_us if start_us is not None else (recorded[0] if recorded else now_us())
        end_us = end_us if end_us is not None else max(now_us(), start_us + 1)
    if start_us >= end_us:
        raise OutOfRangeError("starttime must be before endtime")
    intervals = await archive.intervals(device.device_id, start_us, end_us)
    held = tuple(ctx.app[ENGINE].custody.holds.held_ranges(device.device_id))
    return r.Recordings(
        config.server.server_id, device.device_id, start_us, end_us, tuple(intervals), held
    )


COMMANDS = (
    Command("getDeviceList", get_device_list, VIEW, read_only=True),
    Command("getDivaList", get_diva_list, VIEW, read_only=True),
    Command("getServerOptions", get_server_options, VIEW, read_only=True),
    Command("getServerStatus", get_server_status, VIEW, read_only=True),
    Command("getRecordings", get_recordings, VIEW, read_only=True),
)
