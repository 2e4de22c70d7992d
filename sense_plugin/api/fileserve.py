"""Serving one file of an export: the part of a download every route that serves one shares.

``downloadExportVideo`` (``api/downloads.py``) and the site's internal file route
(``api/site/holderfiles.py``) both call :func:`serve_export_file`, so a file reaches a client
with the same semantics whichever server it comes from. File names are looked up in the export's own
list (device files and ``manifest.xml``), never joined to a path as given. Ranges: one
``bytes=`` range is honoured (206); several ranges, or another unit, are ignored (200 with the
whole file); malformed, reversed or past-the-end ranges answer 416 with ``Content-Range: bytes
*/SIZE``. ``If-Range`` (an ETag or an HTTP date) and ``If-None-Match`` are honoured; the ETag is
the file's SHA-256. ``HEAD`` answers the headers of the same ``GET`` without a body.

Files are opened from the export root without following any symlink, and a device file whose
size differs from the recorded one is not served (-1006).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import re
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

from aiohttp import web

from sense_plugin import safefs
from sense_plugin.api import render
from sense_plugin.api.keys import CONFIG, EXECUTOR
from sense_plugin.api.streaming import OpenFile, Sending, stream
from sense_plugin.errors import (
    MissingParameterError,
    NotAvailableError,
    OutOfRangeError,
    PathNotAllowedError,
    ResultCode,
)
from sense_plugin.export.filetypes import mime_type
from sense_plugin.export.manifest import MANIFEST_NAME
from sense_plugin.export.model import Export, Status
from sense_plugin.params import Params
from sense_plugin.signing import SIGNATURE_NAME

READ_BYTES = 256 * 1024
MAX_CHUNK_KB = 64 * 1024
_RANGE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")
#: (chunk_size_kb, start_from_chunk_index) of the chunked form, or (None, None).
Chunking = tuple[int | None, int | None]


class RangeNotSatisfiable(Exception):
    """The Range header cannot be served (answer 416)."""


def chunk_params(params: Params) -> Chunking:
    """``chunk_size_kb`` and ``start_from_chunk_index`` (the index needs the size: -10)."""
    chunk_kb = params.integer("chunk_size_kb", minimum=1, maximum=MAX_CHUNK_KB)
    chunk_index = params.integer("start_from_chunk_index", minimum=0, maximum=2**40)
    if chunk_index is not None and chunk_kb is None:
        raise MissingParameterError("start_from_chunk_index needs chunk_size_kb")
    return chunk_kb, chunk_index


async def serve_export_file(request: web.Request, directory: Path, roots: tuple[Path, ...],
                            name: str, expected: tuple[str, int] | None, stop: asyncio.Event,
                            chunking: Chunking = (None, None),
                            extra_headers: dict[str, str] | None = None) -> web.StreamResponse:
    """Open ``directory/name`` safely under ``roots`` (in the I/O executor) and serve it.

    ``expected`` is the recorded (SHA-256, size), None for the manifest and its signature;
    ``stop`` ends the transfer (the export was removed); ``extra_headers`` go on every answer
    that serves the file (200, 206, 304, 416).
    """
    loop = asyncio.get_running_loop()
    executor = request.app[EXECUTOR]
    opened = await loop.run_in_executor(executor, open_file, directory, roots, name, expected)
    try:
        sending = Sending(request, opened, stop,
                          request.app[CONFIG].export.download_write_timeout_s)
        return await _serve(sending, chunking, extra_headers or {})
    finally:
        await loop.run_in_executor(executor, os.close, opened.fd)


def check_file_name(name: str) -> None:
    """Only plain names: no separators, NUL/control characters, '%', or '.'/'..' (-1004)."""
    bad = ("/" in name or "\\" in name or "%" in name or name in (".", "..")
           or any(ord(ch) < 32 or ord(ch) == 127 for ch in name))
    if bad:
        shown = "".join(ch if ch.isprintable() else "?" for ch in name)[:60]
        raise PathNotAllowedError(f"file '{shown}' is not a plain file name of the export "
                                  "(no '/', '\\', '%', '..' or control characters)")


def allowed_file(export: Export, name: str) -> tuple[str, int] | None:
    """(SHA-256, size) recorded for ``name`` (None for manifest and signature); else -1006."""
    status = export.status
    if status not in (Status.COMPLETED, Status.FAILED):
        raise NotAvailableError(f"export {export.export_id} is {status.value}; files can be "
                                "downloaded once it is COMPLETED")
    if name in (MANIFEST_NAME, SIGNATURE_NAME):
        return None
    done = [f for j in export.jobs if j.status is Status.COMPLETED for f in j.files]
    for info in done:
        if info.name == name:
            return info.sha256, info.size_bytes
    names = [f.name for f in done]
    raise NotAvailableError(f"export {export.export_id} has no file '{name[:80]}' to download "
                            f"(available: {', '.join([*names, MANIFEST_NAME, SIGNATURE_NAME])})")


def open_file(directory: Path, roots: tuple[Path, ...], name: str,
              expected: tuple[str, int] | None) -> OpenFile:
    """Open and stat a file (blocking) without following symlinks; check its recorded size.

    The ETag is the recorded hash, or computed (manifest).
    """
    try:
        with safefs.opened_dir(directory, roots) as dir_fd:
            fd = safefs.open_regular(dir_fd, name)
    except FileNotFoundError:
        raise NotAvailableError(f"file '{name}' is no longer on disk") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EINVAL):
            raise PathNotAllowedError(f"file '{name}' is not a regular file of the export "
                                      "(a symlink or something else); not served") from None
        raise NotAvailableError(f"file '{name}' cannot be read: {exc.strerror}") from None
    stat = os.fstat(fd)
    if expected is not None and stat.st_size != expected[1]:
        os.close(fd)
        raise NotAvailableError(f"file '{name}' is {stat.st_size} bytes on disk but "
                                f"{expected[1]} were recorded: it changed after the export "
                                "and is not served")
    if expected is None:
        digest = hashlib.sha256()
        for offset in range(0, stat.st_size, READ_BYTES):
            digest.update(os.pread(fd, READ_BYTES, offset))
        sha256 = digest.hexdigest()
    else:
        sha256 = expected[0]
    return OpenFile(name, fd, stat.st_size, f'"{sha256}"', int(stat.st_mtime))


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``(first, last)`` inclusive for one byte range; None to send the whole file."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None  # another unit, or several ranges: ignored, the whole file is sent
    match = _RANGE.match(spec)
    if match is None or not (match.group(1) or match.group(2)):
        raise RangeNotSatisfiable(f"Range '{header[:60]}' is malformed")
    first_text, last_text = match.groups()
    if not first_text:  # suffix: the last N bytes
        count = int(last_text)
        if count == 0 or size == 0:
            raise RangeNotSatisfiable(f"Range '{header[:60]}' selects no bytes")
        return max(0, size - count), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last_text and last < first:
        raise RangeNotSatisfiable(f"Range '{header[:60]}' ends before it starts")
    if first >= size:
        raise RangeNotSatisfiable(f"Range '{header[:60]}' starts past the end ({size} bytes)")
    return first, min(last, size - 1)


def if_range_matches(value: str, opened: OpenFile) -> bool:
    """If-Range: a strong ETag equal to ours, or an HTTP date equal to Last-Modified."""
    value = value.strip()
    if value.startswith(('"', "W/")):
        return value == opened.etag
    try:
        return int(parsedate_to_datetime(value).timestamp()) == opened.mtime_s
    except (TypeError, ValueError, IndexError):
        return False


def _headers(opened: OpenFile) -> dict[str, str]:
    return {
        "Content-Type": mime_type(opened.name),
        "Content-Disposition": f'attachment; filename="{opened.name}"',
        "ETag": opened.etag, "Accept-Ranges": "bytes",
        "Last-Modified": formatdate(opened.mtime_s, usegmt=True),
        "Cache-Control": "private, no-cache",
    }


async def _serve(sending: Sending, chunking: Chunking,
                 extra: dict[str, str]) -> web.StreamResponse:
    request, opened = sending.request, sending.opened
    headers = {**_headers(opened), **extra}
    inm = request.headers.get("If-None-Match")
    if inm is not None and opened.etag in {t.strip() for t in inm.split(",")} | {"*"}:
        return web.Response(status=304, headers={"ETag": opened.etag, **extra})
    size = opened.size
    chunk_kb, chunk_index = chunking
    if chunk_kb is not None:
        first, last = _chunk(opened, chunk_kb, chunk_index or 0, headers)
        return await stream(sending, 200, headers, first, last)
    header = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if header is None or (if_range is not None and not if_range_matches(if_range, opened)):
        return await stream(sending, 200, headers, 0, size - 1)
    try:
        selected = parse_range(header, size)
    except RangeNotSatisfiable as exc:
        body = render.error(ResultCode.OUT_OF_RANGE, str(exc))
        return web.Response(status=416, body=body, headers={
            "Content-Range": f"bytes */{size}", "Content-Type": render.CONTENT_TYPE, **extra})
    if selected is None:
        return await stream(sending, 200, headers, 0, size - 1)
    first, last = selected
    headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return await stream(sending, 206, headers, first, last)


def _chunk(opened: OpenFile, chunk_kb: int, index: int,
           headers: dict[str, str]) -> tuple[int, int]:
    chunk_bytes = chunk_kb * 1024
    count = max(1, -(-opened.size // chunk_bytes))
    if index >= count:
        raise OutOfRangeError(f"start_from_chunk_index {index} is past the last chunk "
                              f"({count} chunks of {chunk_kb} KiB in '{opened.name}')")
    headers.update({"X-Chunk-Index": str(index), "X-Chunk-Count": str(count),
                    "X-File-Size": str(opened.size)})
    first = index * chunk_bytes
    return first, min(opened.size, first + chunk_bytes) - 1
