"""downloadExportVideo (docs/protocol.rst): one file of an export, resumable by Range or by chunks.

How a file is served (plain names only, one byte range, If-Range / If-None-Match against the
SHA-256 ETag, HEAD, 416, the symlink-proof open and the recorded-size check) is
``api/fileserve.py``; pacing, the write timeout and the stop on removal are
``api/streaming.py``. A client that goes away is logged at DEBUG, never as an incident.

On a site (docs/site.rst) a file held by another server is fetched from it, or read from the
shared export root (``api/site/relay.py``): when the job that wrote the file ran elsewhere
(``job.server_id``), or when the (ext) parameter ``serverid`` names another server of the site.
On a single server both are inert: every job is this server's, and another ``serverid``
answers -17.
"""

from __future__ import annotations

from collections.abc import Awaitable

from aiohttp import web

from sense_plugin.api.bundle import BUNDLE_NAME, serve_bundle
from sense_plugin.api.commands.exports import parse_export_id
from sense_plugin.api.fileserve import (
    allowed_file,
    check_file_name,
    chunk_params,
    serve_export_file,
)
from sense_plugin.api.keys import CONFIG, ENGINE
from sense_plugin.api.registry import Command, CommandContext
from sense_plugin.api.site.relay import Elsewhere, download_elsewhere, holding_server
from sense_plugin.api.users import VIEW
from sense_plugin.cluster.keys import SITE_STORE
from sense_plugin.errors import NoServerError
from sense_plugin.export.manifest import MANIFEST_NAME
from sense_plugin.export.model import Export
from sense_plugin.signing import SIGNATURE_NAME


async def download_export_video(ctx: CommandContext) -> web.StreamResponse:
    """Stream a file of a COMPLETED (or, for its completed devices, FAILED) export."""
    params = ctx.params
    export_id = parse_export_id(params.text("exportid", required=True) or "")
    own_id = ctx.app[CONFIG].server.server_id
    named = params.u64("serverid", NoServerError)
    if named is not None and named != own_id:  # held by a server that this one asks
        name = params.text("file", required=True) or ""
        check_file_name(name)
        wanted = Elsewhere(named, export_id, name, ctx.user, chunk_params(params))
        return await download_elsewhere(ctx.request, wanted)
    engine = ctx.app[ENGINE]
    export = await engine.get(export_id, ctx.user.name, ctx.user.is_admin)
    name = params.text("file", required=True) or ""
    check_file_name(name)
    if name == BUNDLE_NAME:  # the case bundle (api/bundle.py)
        return await audited(ctx, export_id, name, serve_bundle(ctx.request, export))
    expected = allowed_file(export, name)
    chunking = chunk_params(params)
    holder = await manifest_holder(ctx, export, name, holding_server(export, name, own_id))
    if holder != own_id:  # the job ran on another server of the site
        wanted = Elsewhere(holder, export_id, name, ctx.user, chunking, export, expected)
        return await audited(ctx, export_id, name, download_elsewhere(ctx.request, wanted))
    return await audited(ctx, export_id, name, serve_export_file(
        ctx.request, export.directory, engine.roots, name, expected,
        engine.download_stop(export_id), chunking))


async def audited(ctx: CommandContext, export_id: int, name: str,
                  serving: Awaitable[web.StreamResponse]) -> web.StreamResponse:
    """Serve, then record a download in the audit trail when bytes of the file were sent
    (a GET answered 200 or 206; not HEAD, 304 or 416)."""
    response = await serving
    if ctx.request.method == "GET" and response.status in (200, 206):
        detail = f"file={name}"
        if response.status == 206:
            detail += f" range={ctx.request.headers.get('Range', '')[:100]}"
        await ctx.app[ENGINE].custody.record("download", export_id, detail)
    return response


async def manifest_holder(ctx: CommandContext, export: Export, name: str, holder: int) -> int:
    """``holder``, or for the manifest (and its signature) of an export another server of the
    site finished, that server while this one has not written its copy yet (it does within a
    second of COMPLETED; until then the finisher's own is served, never a -1006)."""
    site_store = ctx.app.get(SITE_STORE)
    own_id = ctx.app[CONFIG].server.server_id
    if holder != own_id or site_store is None or name not in (MANIFEST_NAME, SIGNATURE_NAME):
        return holder
    if await ctx.app[ENGINE].run_io((export.directory / name).exists):
        return holder
    finisher = await site_store.finisher(export.export_id)
    return holder if finisher is None else finisher


COMMANDS = (Command("downloadExportVideo", download_export_video, VIEW, read_only=True),)
