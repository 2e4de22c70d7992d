"""``downloadExportVideo&file=bundle.zip``: the case bundle of a finished export.

One stored ZIP (``export/bundle.py`` lays it out) of every file of the export, its
``manifest.xml`` and ``manifest.sig``, the server's public key and a README saying how to
check them with openssl (ZIP64 where it is 4 GiB or more). Its size is known before the first
byte, so ``Range`` (one range) is honoured as for any file; its bytes are read in the I/O
executor, block by block, never on the loop. Reference: ``docs/custody.rst``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from aiohttp import web

from sense_plugin import safefs
from sense_plugin.api import render
from sense_plugin.api.fileserve import RangeNotSatisfiable, parse_range
from sense_plugin.api.keys import CONFIG, ENGINE, EXECUTOR
from sense_plugin.api.streaming import disconnect, write_block
from sense_plugin.errors import NotAvailableError, ResultCode
from sense_plugin.export import bundle
from sense_plugin.export.bundle import Member, Piece
from sense_plugin.export.manifest import MANIFEST_NAME
from sense_plugin.export.model import Export, Status
from sense_plugin.signing import SIGNATURE_NAME

log = logging.getLogger(__name__)
BUNDLE_NAME = "bundle.zip"
#: The CRC-32s of files already laid out in a bundle (one memo per application).
BUNDLE_CRCS = web.AppKey("bundle_crcs", bundle.CrcMemo)
#: Sizes and offsets from which the bundle writes ZIP64 fields (``bundle.ZIP64_FROM``; a test
#: lowers it to serve a small export's bundle in ZIP64).
BUNDLE_ZIP64_FROM = web.AppKey("bundle_zip64_from", int)
KEY_NAME = "signing-key.pub.pem"
README_NAME = "README.txt"
README = """Case bundle of export {export_id}

manifest.xml lists every file of the export with its size and SHA-256; manifest.sig is the
server's Ed25519 signature over the exact bytes of manifest.xml; signing-key.pub.pem is the
server's public key (SHA-256 fingerprint of its DER form: {fingerprint}).

1. Check the signature of the manifest (OpenSSL 3):

   openssl pkeyutl -verify -pubin -inkey signing-key.pub.pem -rawin \\
       -in manifest.xml -sigfile manifest.sig

   It prints "Signature Verified Successfully" when manifest.xml is exactly what the
   server signed.

2. Check each file against the manifest:

   openssl dgst -sha256 FILE

   and compare the digest with the <sha256> of that <file> in manifest.xml (its <size> too).

Files in this bundle: {names}
"""


def members_of(export: Export, roots: tuple[Path, ...], public_pem: str,
               fingerprint: str) -> list[Member]:
    """Open every member (blocking; the caller closes each ``fd``), checking recorded sizes."""
    files = [f for j in export.jobs if j.status is Status.COMPLETED for f in j.files]
    members: list[Member] = []
    try:
        with safefs.opened_dir(export.directory, roots) as dir_fd:
            for name, size in [*((f.name, f.size_bytes) for f in files),
                               (MANIFEST_NAME, None), (SIGNATURE_NAME, None)]:
                fd = safefs.open_regular(dir_fd, name)
                actual = os.fstat(fd).st_size
                members.append(Member(name, actual, fd=fd))
                if size is not None and actual != size:
                    raise NotAvailableError(f"file '{name}' is {actual} bytes on disk but "
                                            f"{size} were recorded: no bundle is served")
    except FileNotFoundError as exc:
        close_members(members)
        raise NotAvailableError(f"file '{exc.filename or '?'}' of export {export.export_id} "
                                "is no longer on disk") from None
    except BaseException:
        close_members(members)
        raise
    names = ", ".join([m.name for m in members] + [KEY_NAME, README_NAME])
    readme = README.format(export_id=export.export_id, fingerprint=fingerprint, names=names)
    members.append(Member(KEY_NAME, len(public_pem), data=public_pem.encode("ascii")))
    members.append(Member(README_NAME, len(readme.encode()), data=readme.encode("utf-8")))
    return members


def close_members(members: list[Member]) -> None:
    for member in members:
        if member.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(member.fd)


def check_bundle(export: Export, own_id: int) -> None:
    """-1006 for an export that has not finished, or whose files another server holds."""
    if export.status not in (Status.COMPLETED, Status.FAILED):
        raise NotAvailableError(f"export {export.export_id} is {export.status.value}: its case "
                                "bundle can be downloaded once it is COMPLETED")
    if any(j.server_id != own_id for j in export.jobs if j.status is Status.COMPLETED):
        raise NotAvailableError(f"export {export.export_id} has files on other servers of the "
                                "site: download them one by one")


async def serve_bundle(request: web.Request, export: Export) -> web.StreamResponse:
    """Lay the bundle out in the I/O executor, then send the requested bytes."""
    engine = request.app[ENGINE]
    check_bundle(export, request.app[CONFIG].server.server_id)
    loop = asyncio.get_running_loop()
    executor = request.app[EXECUTOR]
    signer = engine.signer
    members = await loop.run_in_executor(executor, members_of, export, engine.roots,
                                         signer.public_pem, signer.fingerprint)
    try:
        pieces, size = await loop.run_in_executor(executor, bundle.layout, members,
                                                  request.app[BUNDLE_CRCS],
                                                  request.app[BUNDLE_ZIP64_FROM])
        return await _send(request, export, pieces, size)
    finally:
        await loop.run_in_executor(executor, close_members, members)


async def _send(request: web.Request, export: Export, pieces: list[Piece],
                size: int) -> web.StreamResponse:
    headers = {"Content-Type": "application/zip", "Accept-Ranges": "bytes",
               "Content-Disposition": f'attachment; filename="export-{export.export_id}-'
                                      f'{BUNDLE_NAME}"', "Cache-Control": "private, no-cache"}
    status, first, last = 200, 0, size - 1
    header = request.headers.get("Range")
    if header is not None:
        try:
            selected = parse_range(header, size)
        except RangeNotSatisfiable as exc:
            return web.Response(status=416, body=render.error(ResultCode.OUT_OF_RANGE, str(exc)),
                                headers={"Content-Range": f"bytes */{size}",
                                         "Content-Type": render.CONTENT_TYPE})
        if selected is not None:
            status, (first, last) = 206, selected
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = last - first + 1
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    await _stream(request, response, export, bundle.blocks(pieces, first, last))
    return response


async def _stream(request: web.Request, response: web.StreamResponse, export: Export,
                  source: Iterator[bytes]) -> None:
    engine = request.app[ENGINE]
    loop = asyncio.get_running_loop()
    executor = request.app[EXECUTOR]
    stop = engine.download_stop(export.export_id)
    timeout_s = request.app[CONFIG].export.download_write_timeout_s
    try:
        while (data := await loop.run_in_executor(executor, next, source, b"")):
            why = await write_block(response, data, stop, timeout_s)
            if why:
                log.info("bundle of export %s stopped: %s", export.export_id, why)
                disconnect(request)
                return
        await response.write_eof()
    except ConnectionError as exc:
        log.debug("bundle of export %s: client disconnected (%s)", export.export_id, exc)
        disconnect(request)
    except OSError as exc:
        log.warning("bundle of export %s cut short: %s", export.export_id, exc)
        disconnect(request)
