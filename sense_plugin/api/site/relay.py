"""Downloads from any server of a site (docs/site.rst): relayed from the holder, or read from disk.

A file written by another server's job reaches the client in one of two ways:

- **relay** (the default): this server calls the holder's ``/cluster/files/...`` (``files.py``,
  signed with the site secret, naming the user it acts for), forwarding ``Range``, ``If-Range``
  and ``If-None-Match``, and streams the answer through in blocks of at most ``READ_BYTES``:
  a block is read from the holder only once the previous one was written to the client, so
  nothing is buffered whole and a slow client slows the holder. The client gets the holder's
  status (200/206/304/416) and headers; a client that goes away closes the upstream.
- **shared storage** (``[cluster] shared_export_root = true``): every server sees the export
  roots at the same paths, so the file is opened here, with the same symlink-proof open and
  size check as a local download, and nothing travels between servers but (while this server
  does not know the export itself) one signed request for its directory, size and SHA-256.

A holder that cannot be reached answers -1008 once its last heartbeat is older than
``node_timeout_s``, else -1006 naming it; connecting and waiting for an answer are bounded
(``CONNECT_TIMEOUT_S``; ``READ_TIMEOUT_S``, or ``node_timeout_s`` if shorter), never a hang.
A coded error of the holder (-57, -1006, ...) reaches the client with the same code, prefixed
with the holder's name.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
from aiohttp import web
from lxml import etree
from yarl import URL

from sense_plugin import safefs
from sense_plugin.api.fileserve import READ_BYTES, Chunking, serve_export_file
from sense_plugin.api.keys import CONFIG, ENGINE, EXECUTOR
from sense_plugin.api.streaming import disconnect, write_block
from sense_plugin.api.users import User
from sense_plugin.cluster.keys import SITE
from sense_plugin.cluster.signing import HEADER, sign
from sense_plugin.configmodel import ClusterConfig
from sense_plugin.errors import (
    NoServerError,
    NotAvailableError,
    SenseError,
    ServerOfflineError,
    error_for_code,
    quote_input,
)
from sense_plugin.export.model import Export

if TYPE_CHECKING:
    from sense_plugin.cluster.nodes import Site, SiteServer

log = logging.getLogger(__name__)
#: The holder's route (``files.py``) and the header on its answers that serve a file.
ROUTE = "/cluster/files/{exportid}/{name}"
DIRECTORY_HEADER = "X-Sense-Export-Directory"
CONNECT_TIMEOUT_S = 5.0
#: The holder must answer (headers, then each block) within this time (or node_timeout_s).
READ_TIMEOUT_S = 30.0
ERROR_BODY_BYTES = 64 * 1024
FORWARDED = ("Range", "If-Range", "If-None-Match")
PASSED = ("Content-Type", "Content-Disposition", "Content-Range", "ETag", "Accept-Ranges",
          "Last-Modified", "Cache-Control", "X-Chunk-Index", "X-Chunk-Count", "X-File-Size")
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                          huge_tree=False)


@dataclass(frozen=True)
class Elsewhere:
    """A file asked for on this server and held by another one."""

    server_id: int
    export_id: int
    name: str
    user: User
    chunking: Chunking = (None, None)
    #: The export's record, when this server knows it (the site's job store); else None.
    export: Export | None = None
    #: The recorded (SHA-256, size) of a device file from that record.
    expected: tuple[str, int] | None = None


def file_path(export_id: int, quoted_name: str) -> str:
    """The holder's path for a file name already percent-encoded."""
    return ROUTE.format(exportid=export_id, name=quoted_name)


def directory_of(headers: Mapping[str, str]) -> Path | None:
    """The export directory a holder's answer names; None for an error document."""
    value = headers.get(DIRECTORY_HEADER)
    return Path(value) if value else None


def holding_server(export: Export, name: str, own_id: int) -> int:
    """The server whose job wrote ``name``; the manifest is taken from this server when one
    of its jobs is part of the export, else from the server of the first job."""
    for job in export.jobs:
        if any(f.name == name for f in job.files):
            return job.server_id
    servers = [job.server_id for job in export.jobs]
    return own_id if own_id in servers or not servers else servers[0]


class Relay:
    """This server's client for the other servers' files (one HTTP session)."""

    def __init__(self, cluster: ClusterConfig, session: aiohttp.ClientSession) -> None:
        self.cluster, self.session = cluster, session

    async def stream(self, request: web.Request, owner: SiteServer, wanted: Elsewhere,
                     stop: asyncio.Event) -> web.StreamResponse:
        """Relay the holder's answer to ``request`` (same status, headers and bytes)."""
        forwarded = {k: v for k in FORWARDED if (v := request.headers.get(k)) is not None}
        upstream = await self._request(request.method, owner, wanted, forwarded)
        try:
            if directory_of(upstream.headers) is None:
                raise await _owner_error(owner, upstream)
            return await _pass(request, upstream, owner, stop,
                               request.app[CONFIG].export.download_write_timeout_s)
        finally:
            upstream.release()  # closes the connection unless the body was read to its end

    async def file_info(self, owner: SiteServer, wanted: Elsewhere
                        ) -> tuple[Path, tuple[str, int]]:
        """(directory, (SHA-256, size)) of the file, asked of its holder.

        A GET of its first byte, not a HEAD: a refusal then carries its coded error document.
        """
        upstream = await self._request("GET", owner, wanted, {"Range": "bytes=0-0"},
                                       chunked=False)
        try:
            directory = directory_of(upstream.headers)
            total = upstream.headers.get("Content-Range", "").rpartition("/")[2]
            etag = upstream.headers.get("ETag", "")
            if directory is None or upstream.status != 206 or not total.isdigit() or not etag:
                raise await _owner_error(owner, upstream)
            return directory, (etag.strip('"'), int(total))
        finally:
            upstream.release()

    async def _request(self, method: str, owner: SiteServer, wanted: Elsewhere,
                       headers: dict[str, str], *, chunked: bool = True
                       ) -> aiohttp.ClientResponse:
        query = {"user": wanted.user.name, "admin": "1" if wanted.user.is_admin else "0"}
        for key, value in zip(("chunk_size_kb", "start_from_chunk_index"), wanted.chunking,
                              strict=True):
            if value is not None and chunked:
                query[key] = str(value)
        path_qs = (file_path(wanted.export_id, quote(wanted.name, safe="")) + "?"
                   + urlencode(query, quote_via=quote))
        host = urlsplit(owner.node_url).netloc
        proof = sign(self.cluster.site_secret, method, host, path_qs)
        try:
            return await self.session.request(
                method, URL(owner.node_url + path_qs, encoded=True), allow_redirects=False,
                headers={**headers, "Host": host, HEADER: proof})
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unreachable(owner, wanted, exc, self.cluster.node_timeout_s) from None


RELAY = web.AppKey("cluster_relay", Relay)


async def relay_ctx(app: web.Application) -> AsyncIterator[None]:
    """The relay's HTTP session (bounded connect and read times; bytes passed as they are)."""
    cluster = app[CONFIG].cluster
    assert cluster is not None
    read_s = min(READ_TIMEOUT_S, cluster.node_timeout_s)
    timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_S,
                                    sock_connect=CONNECT_TIMEOUT_S, sock_read=read_s)
    # One connection per relayed file (downloads are long; a pool saves little) and it closes
    # with the download, so a client that goes away never leaves an upstream behind.
    connector = aiohttp.TCPConnector(force_close=True, limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     auto_decompress=False) as session:
        app[RELAY] = Relay(cluster, session)
        yield


async def download_elsewhere(request: web.Request, wanted: Elsewhere) -> web.StreamResponse:
    """Serve a file held by server ``wanted.server_id``: from shared disk, or relayed."""
    relay, site = request.app.get(RELAY), request.app.get(SITE)
    if relay is None or site is None:
        raise NoServerError(f"serverid {wanted.server_id} is not this server, and this server "
                            "is not part of a site (no [cluster])")
    engine = request.app[ENGINE]
    known = wanted.export is not None  # a local stop event only for an export known here
    stop = engine.download_stop(wanted.export_id) if known else asyncio.Event()
    if relay.cluster.shared_export_root and wanted.export is not None:
        return await _from_disk(request, wanted, wanted.export.directory, wanted.expected, stop)
    owner = await _owner(site, wanted.server_id)
    if relay.cluster.shared_export_root:
        directory, expected = await relay.file_info(owner, wanted)
        return await _from_disk(request, wanted, directory, expected, stop)
    return await relay.stream(request, owner, wanted, stop)


async def _owner(site: Site, server_id: int) -> SiteServer:
    for server in await site.servers():
        if server.server_id == server_id:
            return server
    raise NoServerError(f"serverid {server_id} is not known on this site")


async def _from_disk(request: web.Request, wanted: Elsewhere, directory: Path,
                     expected: tuple[str, int] | None, stop: asyncio.Event
                     ) -> web.StreamResponse:
    """Open the file on the shared export root, as a local download would."""
    roots = request.app[ENGINE].roots
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(request.app[EXECUTOR], safefs.split_under_root,
                                   directory, roots)
    except SenseError:
        raise NotAvailableError(
            f"[cluster] shared_export_root is set, but export {wanted.export_id}'s directory "
            f"on server {wanted.server_id} ({directory}) is not inside this server's export "
            "roots: configure the same [server] export_roots on every server") from None
    return await serve_export_file(request, directory, roots, wanted.name, expected, stop,
                                   wanted.chunking)


async def _pass(request: web.Request, upstream: aiohttp.ClientResponse, owner: SiteServer,
                stop: asyncio.Event, timeout_s: float) -> web.StreamResponse:
    """Answer with the holder's status and headers; copy its body block by block."""
    headers = {k: v for k in PASSED if (v := upstream.headers.get(k)) is not None}
    if upstream.status in (304, 416):
        body = await upstream.content.read(ERROR_BODY_BYTES)
        return web.Response(status=upstream.status, headers=headers, body=body or None)
    response = web.StreamResponse(status=upstream.status, headers=headers)
    if upstream.content_length is not None:
        response.content_length = upstream.content_length
    sent = 0
    try:
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        while True:
            try:
                data = await upstream.content.read(READ_BYTES)
            except (aiohttp.ClientError, TimeoutError) as exc:
                why = f"server {owner.server_id} stopped sending ({exc or type(exc).__name__})"
                break
            if not data:
                why = ""
                break
            why = await write_block(response, data, stop, timeout_s)
            if why:
                break
            sent += len(data)
        if why or (upstream.content_length is not None and sent < upstream.content_length):
            log.info("relay of %s stopped after %d bytes: %s", request.path_qs, sent,
                     why or f"server {owner.server_id} sent a short body")
            disconnect(request)  # a body cut short must not look complete
            return response
        await response.write_eof()
    except ConnectionError as exc:  # the client went away: the upstream is closed by release
        log.debug("relay of %s: client disconnected (%s)", request.path_qs, exc)
        disconnect(request)
    return response


async def _owner_error(owner: SiteServer, upstream: aiohttp.ClientResponse) -> SenseError:
    """The coded error to give the client for a holder's error answer."""
    try:
        body = await upstream.content.read(ERROR_BODY_BYTES)
    except (aiohttp.ClientError, TimeoutError):
        body = b""
    code, text = _parse_error(body)
    who = f"server {owner.server_id} ('{owner.name}')"
    if upstream.status == 200 and code is not None and code < 0:
        return error_for_code(code, f"{who}: {text}")
    return NotAvailableError(f"{who} refused the file request (HTTP {upstream.status}: "
                             f"{text or 'no description'})")


def _parse_error(body: bytes) -> tuple[int | None, str]:
    try:
        root = etree.fromstring(body, _PARSER)
        return int(root.get("errorcode", "")), root.findtext("description") or ""
    except (etree.XMLSyntaxError, ValueError, TypeError):
        return None, ""


def _unreachable(owner: SiteServer, wanted: Elsewhere, exc: BaseException,
                 node_timeout_s: float) -> SenseError:
    who = (f"server {owner.server_id} ('{owner.name}', {owner.node_url}), which holds file "
           f"'{quote_input(wanted.name)}' of export {wanted.export_id},")
    if owner.seen_ago_s > node_timeout_s:
        return ServerOfflineError(f"{who} has not been seen for {owner.seen_ago_s:.0f} s "
                                  f"(more than [cluster] node_timeout_s = {node_timeout_s:g} s)")
    reason = quote_input(str(exc).strip() or type(exc).__name__, 120)
    return NotAvailableError(f"{who} cannot be reached ({reason}); it was last seen "
                             f"{owner.seen_ago_s:.1f} s ago: try again later")
