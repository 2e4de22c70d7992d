"""downloadExportVideo over real HTTP: whole files, ranges, validators, chunks, bad input."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import struct
import sys
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from apiclient import command, export_body, parse_result, wait_export
from conftest import API_DEVICES, BIG_DEVICE
from lxml import etree

from sense_plugin.timestamps import format_timestamp

STEADY, GAPPY = API_DEVICES["Steady"], API_DEVICES["Gappy"]


async def finished(client: Any, archive: dict[str, Any], *devices: tuple[int, float, float],
                   **fields: Any) -> etree._Element:
    base = archive["start_us"]
    items = [(d, format_timestamp(base + int(a * 1e6)), format_timestamp(base + int(b * 1e6)))
             for d, a, b in devices]
    root = await command(client, "exportVideo", body=export_body(items, **fields))
    return await wait_export(client, int(root.findtext("exportid")))


async def download(client: Any, export_id: Any, name: str, headers: dict[str, str] | None = None,
                   **params: Any) -> Any:
    query = {"command": "downloadExportVideo", "exportid": str(export_id), "file": name,
             **{k: str(v) for k, v in params.items()}}
    return await client.get("/command", params=query, headers=headers)


async def expect_error(response: Any, code: int) -> str:
    assert response.status == 200
    root = parse_result(await response.read(), None)
    assert int(root.get("errorcode")) == code, etree.tostring(root)
    return root.findtext("description")


@pytest.fixture
async def done(client: Any, api_archive: dict[str, Any]) -> tuple[Any, str, str, str]:
    """(client, export id, file name, sha256) of a finished one-device export."""
    export = await finished(client, api_archive, (STEADY, 2, 12))
    file_el = export.find("devices/device/files/file")
    return client, export.findtext("exportid"), file_el.findtext("name"), file_el.findtext("sha256")


async def test_whole_file_and_manifest(done: tuple[Any, str, str, str]) -> None:
    client, export_id, name, sha = done
    response = await download(client, export_id, name)
    assert response.status == 200
    body = await response.read()
    assert hashlib.sha256(body).hexdigest() == sha
    assert response.headers["ETag"] == f'"{sha}"'
    assert response.headers["Content-Disposition"] == f'attachment; filename="{name}"'
    assert response.headers["Content-Type"] == "video/mp4"
    assert response.headers["Accept-Ranges"] == "bytes"
    manifest = await download(client, export_id, "manifest.xml")
    assert manifest.status == 200
    root = etree.fromstring(await manifest.read())
    assert root.findtext("devices/device/file/sha256") == sha
    again = await download(client, export_id, name, {"If-None-Match": f'"{sha}"'})
    assert again.status == 304


async def test_ranges_and_if_range(done: tuple[Any, str, str, str]) -> None:
    client, export_id, name, sha = done
    whole = await (await download(client, export_id, name)).read()
    size = len(whole)
    cases = {"bytes=0-99": (0, 99), "bytes=100-": (100, size - 1),
             "bytes=-50": (size - 50, size - 1), f"bytes=10-{size + 500}": (10, size - 1)}
    for header, (first, last) in cases.items():
        response = await download(client, export_id, name, {"Range": header})
        assert response.status == 206, header
        assert response.headers["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert await response.read() == whole[first:last + 1]
    # resume with a matching validator → 206; with a stale one → the whole file (200)
    resume = {"Range": "bytes=5-", "If-Range": f'"{sha}"'}
    matching = await download(client, export_id, name, resume)
    assert matching.status == 206 and await matching.read() == whole[5:]
    stale = await download(client, export_id, name, {"Range": "bytes=5-", "If-Range": '"0000"'})
    assert stale.status == 200 and await stale.read() == whole
    old_date = formatdate(0, usegmt=True)
    dated = await download(client, export_id, name, {"Range": "bytes=5-", "If-Range": old_date})
    assert dated.status == 200
    several = await download(client, export_id, name, {"Range": "bytes=0-1,5-6"})
    assert several.status == 200 and len(await several.read()) == size


async def test_bad_ranges_answer_416(done: tuple[Any, str, str, str]) -> None:
    client, export_id, name, _ = done
    size = len(await (await download(client, export_id, name)).read())
    for header in ("bytes=abc", "bytes=", "bytes=-", "bytes=500-100", f"bytes={size}-",
                   "bytes=999999999-", "bytes=-0", "bytes=1-2-3"):
        response = await download(client, export_id, name, {"Range": header})
        assert response.status == 416, header
        assert response.headers["Content-Range"] == f"bytes */{size}"
        root = parse_result(await response.read(), None)
        assert root.get("errorcode") == "-22" and "Range" in root.findtext("description")
    other_unit = await download(client, export_id, name, {"Range": "pages=0-1"})
    assert other_unit.status == 200 and len(await other_unit.read()) == size


async def test_chunk_form(done: tuple[Any, str, str, str]) -> None:
    client, export_id, name, _ = done
    whole = await (await download(client, export_id, name)).read()
    count = -(-len(whole) // 4096)
    pieces = []
    for index in range(count):
        response = await download(client, export_id, name, chunk_size_kb=4,
                                  start_from_chunk_index=index)
        assert response.status == 200
        assert response.headers["X-Chunk-Count"] == str(count)
        pieces.append(await response.read())
    assert b"".join(pieces) == whole
    past = await download(client, export_id, name, chunk_size_kb=4, start_from_chunk_index=count)
    assert "past the last chunk" in await expect_error(past, -22)
    await expect_error(await download(client, export_id, name, chunk_size_kb=0), -22)
    await expect_error(await download(client, export_id, name, start_from_chunk_index=1), -10)


async def test_file_names_are_never_joined_blindly(done: tuple[Any, str, str, str]) -> None:
    client, export_id, _, _ = done
    for bad in ("../manifest.xml", "a/b", "..", "x\x00.mp4", "%2e%2e%2fetc", "..\\manifest.xml",
                "/etc/passwd"):
        description = await expect_error(await download(client, export_id, bad), -1004)
        assert "plain file name" in description


async def test_percent_encoded_traversal_on_the_wire(done: tuple[Any, str, str, str]) -> None:
    client, export_id, _, _ = done
    for raw in ("%2e%2e%2fmanifest.xml", "%252e%252e%252f", "%00"):
        response = await client.get(f"/command?command=downloadExportVideo&exportid={export_id}"
                                    f"&file={raw}")
        await expect_error(response, -1004)


async def test_unavailable_and_unknown(done: tuple[Any, str, str, str],
                                       api_archive: dict[str, Any]) -> None:
    client, export_id, name, _ = done
    assert "no file" in await expect_error(await download(client, export_id, "other.mp4"), -1006)
    await expect_error(await download(client, 999, name), -57)
    await expect_error(await download(client, "abc", name), -57)
    await expect_error(await client.get("/command", params={
        "command": "downloadExportVideo", "exportid": export_id}), -10)
    # a FAILED export: its completed device downloads, the failed one is not available
    failed = await finished(client, api_archive, (STEADY, 1, 3), (GAPPY, 62, 64))
    assert failed.findtext("status") == "FAILED"
    good_name = failed.find("devices/device/files/file").findtext("name")
    assert (await download(client, failed.findtext("exportid"), good_name)).status == 200
    await expect_error(await download(client, failed.findtext("exportid"),
                                      f"Gappy_{GAPPY}_x.mp4"), -1006)
    await command(client, "exportVideo", action="remove", exportid=export_id)
    assert "REMOVED" in await expect_error(await download(client, export_id, name), -1006)


async def test_head_answers_the_get_headers_without_a_body(
        done: tuple[Any, str, str, str]) -> None:
    client, export_id, name, _sha = done
    get = await download(client, export_id, name)
    await get.read()
    query = {"command": "downloadExportVideo", "exportid": export_id, "file": name}
    head = await client.head("/command", params=query)
    assert head.status == 200
    assert await head.read() == b""
    for header in ("Content-Type", "Content-Length", "ETag", "Accept-Ranges", "Last-Modified",
                   "Content-Disposition"):
        assert head.headers[header] == get.headers[header], header
    ranged = await client.head("/command", params=query, headers={"Range": "bytes=0-9"})
    assert ranged.status == 206 and ranged.headers["Content-Length"] == "10"


async def stalled_download(client: Any, export_id: int | str, name: str) -> socket.socket:
    """A client that asks for a file and then reads nothing (a tiny receive window)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", client.server.port))
    path = f"/command?command=downloadExportVideo&exportid={export_id}&file={name}"
    await loop.sock_sendall(sock, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


async def drain(sock: socket.socket, timeout_s: float) -> tuple[int, bool]:
    """Read what the server sent; (bytes, True if it closed the connection in time)."""
    loop = asyncio.get_running_loop()
    total, deadline = 0, loop.time() + timeout_s
    try:
        while loop.time() < deadline:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65536), deadline - loop.time())
            if not data:
                return total, True
            total += len(data)
    except (TimeoutError, ConnectionError):
        return total, not isinstance(sys.exc_info()[1], TimeoutError)
    finally:
        sock.close()
    return total, False


async def big_export(client: Any, big_archive: tuple[Path, int]) -> tuple[str, str, int]:
    start = big_archive[1]
    body = export_body([(BIG_DEVICE, format_timestamp(start),
                         format_timestamp(start + 11_000_000))])
    root = await command(client, "exportVideo", body=body)
    export = await wait_export(client, int(root.findtext("exportid")))
    file_el = export.find("devices/device/files/file")
    assert file_el is not None, etree.tostring(export)
    return export.findtext("exportid"), file_el.findtext("name"), int(file_el.findtext("size"))


async def test_a_client_that_stops_reading_is_disconnected_after_the_write_timeout(
        make_client: Any, big_config: Any, big_archive: tuple[Path, int]) -> None:
    client = await make_client(big_config(download_write_timeout_s=1))
    export_id, name, size = await big_export(client, big_archive)
    sock = await stalled_download(client, export_id, name)
    await asyncio.sleep(3)
    received, closed = await drain(sock, 10)
    assert closed and received < size, (closed, received, size)


async def test_removing_an_export_stops_its_running_downloads(
        make_client: Any, big_config: Any, big_archive: tuple[Path, int]) -> None:
    client = await make_client(big_config())
    export_id, name, size = await big_export(client, big_archive)
    sock = await stalled_download(client, export_id, name)
    await asyncio.sleep(0.5)
    await command(client, "exportVideo", action="remove", exportid=export_id)
    received, closed = await drain(sock, 5)  # the write timeout (30 s) is far away
    assert closed and received < size, (closed, received, size)


async def test_a_client_that_disconnects_mid_download_is_no_incident(
        make_client: Any, big_config: Any, big_archive: tuple[Path, int],
        caplog: pytest.LogCaptureFixture) -> None:
    client = await make_client(big_config())
    export_id, name, _size = await big_export(client, big_archive)
    loop = asyncio.get_running_loop()
    for reset in (False, True, False, True):
        sock = await stalled_download(client, export_id, name)
        await loop.sock_recv(sock, 1000)  # the download has begun
        if reset:  # a reset, with most of the file unsent
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        await asyncio.sleep(0.3)
    await asyncio.sleep(1)
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors == [], [r.getMessage() for r in errors]
    await command(client, "getExportVideoStatus", exportid=export_id)  # still serving


async def test_serverid_of_another_server_is_unknown_without_a_site(
        done: tuple[Any, str, str, str]) -> None:
    client, export_id, name, sha = done
    own = await download(client, export_id, name, serverid=7015498111931795223)
    assert own.status == 200 and hashlib.sha256(await own.read()).hexdigest() == sha
    description = await expect_error(await download(client, export_id, name, serverid=42), -17)
    assert "not part of a site" in description
    await expect_error(await download(client, export_id, name, serverid="x"), -17)
