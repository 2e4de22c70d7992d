"""An exported file and its manifest never disagree; nothing is written or read outside the roots.

Each test attacks the real server over HTTP the way a field test did: repeated devices, a reused
export directory, a temporary file swapped mid-write, a symlink swapped into the path after
admission, downloads through symlinks or of changed files, a path into another user's export.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from apiclient import command, export_body, parse_result, wait_export
from conftest import API_DEVICES
from lxml import etree

from sense_plugin.export.verify import verify_directory
from sense_plugin.passwords import hash_password
from sense_plugin.timestamps import format_timestamp

STEADY = API_DEVICES["Steady"]


def at(archive: dict[str, Any], seconds: float) -> str:
    return format_timestamp(archive["start_us"] + int(seconds * 1e6))


async def create(client: Any, archive: dict[str, Any], ranges: list[tuple[float, float]],
                 expect: int = 0, headers: dict[str, str] | None = None,
                 **fields: Any) -> etree._Element:
    items = [(STEADY, at(archive, a), at(archive, b)) for a, b in ranges]
    return await command(client, "exportVideo", body=export_body(items, **fields),
                         expect=expect, headers=headers)


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_same_device_twice_with_the_same_start_is_refused_naming_it(
        client: Any, api_archive: dict[str, Any], make_config: Callable[..., Any]) -> None:
    root = await create(client, api_archive, [(1, 3), (1, 9)], expect=-22)
    description = root.findtext("description") or ""
    assert str(STEADY) in description and "twice" in description, description
    # different starts are different files: both complete and the manifest matches the disk
    export_id = int((await create(client, api_archive, [(1, 3), (2, 9)], path="twice"))
                    .findtext("exportid"))
    export = await wait_export(client, export_id)
    assert export.findtext("status") == "COMPLETED"
    names = export.xpath("devices/device/files/file/name/text()")
    assert len(set(names)) == 2
    report = verify_directory(make_config().server.export_roots[0] / "twice" / str(export_id))
    assert report.ok, report.lines()


async def test_an_existing_export_directory_is_never_reused(
        client: Any, api_archive: dict[str, Any], make_config: Callable[..., Any]) -> None:
    root_dir = make_config().server.export_roots[0]
    old = root_dir / "case-a" / "1"
    old.mkdir(parents=True)
    (old / "manifest.xml").write_bytes(b"old evidence")
    refused = await create(client, api_archive, [(1, 3)], expect=-1007, path="case-a")
    assert str(old) in (refused.findtext("description") or "")
    assert (old / "manifest.xml").read_bytes() == b"old evidence"
    assert sorted(p.name for p in old.iterdir()) == ["manifest.xml"]
    export_id = int((await create(client, api_archive, [(1, 3)], path="case-a"))
                    .findtext("exportid"))
    assert export_id == 2  # ids never go back, and 1 is not handed out twice
    assert (await wait_export(client, export_id)).findtext("status") == "COMPLETED"


async def test_a_temporary_file_swapped_mid_write_is_never_reported_completed(
        client: Any, api_archive: dict[str, Any], make_config: Callable[..., Any]) -> None:
    export_id = int((await create(client, api_archive, [(0, 20)], path="swap", bandwidth=120))
                    .findtext("exportid"))
    directory = make_config().server.export_roots[0] / "swap" / str(export_id)

    def part() -> Path | None:
        if not directory.is_dir():
            return None
        found = [p for p in directory.iterdir() if p.name.endswith(".part")]
        return found[0] if found and found[0].stat().st_size > 0 else None

    await wait_for(lambda: part() is not None)
    temp = part()
    assert temp is not None
    temp.rename(directory / "moved-away")
    temp.write_bytes(os.urandom(4096))  # an impostor under the temporary name
    export = await wait_export(client, export_id, timeout_s=60)
    device = export.find("devices/device")
    assert device.findtext("status") == "FAILED", etree.tostring(device).decode()
    assert device.findtext("errorcode") == "-18"
    assert "not the file that was written" in (device.findtext("description") or "")
    assert device.find("files") is None


async def test_a_symlink_swapped_into_the_path_after_admission_writes_nothing_outside(
        client: Any, api_archive: dict[str, Any], make_config: Callable[..., Any],
        tmp_path: Path) -> None:
    root_dir = make_config().server.export_roots[0]
    outside = tmp_path / "outside"
    outside.mkdir()
    export_id = int((await create(client, api_archive, [(0, 10)], path="case-s/deep",
                                  bandwidth=200)).findtext("exportid"))
    await wait_export(client, export_id, until=("SYNCING",))
    await wait_for(lambda: (root_dir / "case-s" / "deep" / str(export_id)).is_dir())
    (root_dir / "case-s").rename(root_dir / "case-s-moved")
    (outside / "deep").mkdir()
    os.symlink(outside, root_dir / "case-s")  # case-s/deep/<id> now leads outside the roots
    os.symlink(root_dir / "case-s-moved" / "deep" / str(export_id),
               outside / "deep" / str(export_id))
    export = await wait_export(client, export_id, timeout_s=60)
    device = export.find("devices/device")
    assert device.findtext("status") == "FAILED"
    assert device.findtext("errorcode") == "-1004", device.findtext("description")
    written = [p for p in outside.rglob("*") if p.is_file() and not p.is_symlink()]
    assert written == []
    moved = root_dir / "case-s-moved" / "deep" / str(export_id)
    assert not (moved / "manifest.xml").exists() or b"FAILED" in (moved / "manifest.xml")\
        .read_bytes()


async def download(client: Any, export_id: int, name: str, method: str = "GET") -> Any:
    return await client.request(method, "/command", params={
        "command": "downloadExportVideo", "exportid": str(export_id), "file": name})


async def test_downloads_never_follow_symlinks_and_check_the_recorded_size(
        client: Any, api_archive: dict[str, Any], make_config: Callable[..., Any],
        tmp_path: Path) -> None:
    export_id = int((await create(client, api_archive, [(1, 3)], path="dl"))
                    .findtext("exportid"))
    export = await wait_export(client, export_id)
    name = export.findtext("devices/device/files/file/name")
    directory = make_config().server.export_roots[0] / "dl" / str(export_id)
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0 secret\n")
    (directory / "manifest.xml").unlink()
    os.symlink(secret, directory / "manifest.xml")
    response = await download(client, export_id, "manifest.xml")
    body = await response.read()
    assert b"secret" not in body
    assert parse_result(body, None).get("errorcode") == "-1004"
    video = directory / name
    data = video.read_bytes()
    video.unlink()
    (tmp_path / "copy.mp4").write_bytes(data)
    os.symlink(tmp_path / "copy.mp4", video)  # the same bytes, but through a symlink
    response = await download(client, export_id, name)
    assert parse_result(await response.read(), None).get("errorcode") == "-1004"
    video.unlink()
    video.write_bytes(data + b"appended")
    response = await download(client, export_id, name)
    root = parse_result(await response.read(), None)
    assert root.get("errorcode") == "-1006" and "recorded" in (root.findtext("description") or "")
    video.write_bytes(data)
    response = await download(client, export_id, name)
    assert hashlib.sha256(await response.read()).hexdigest() == \
        export.findtext("devices/device/files/file/sha256")


def basic(user: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{user}-pw".encode()).decode()}


@pytest.fixture(scope="module")
def two_users() -> list[dict[str, Any]]:
    return [{"name": n, "password_hash": hash_password(f"{n}-pw"), "permissions": ["export"]}
            for n in ("alice", "bob")]


async def test_a_path_into_another_users_export_directory_is_refused(
        make_client: Callable[..., Any], make_config: Callable[..., Any],
        api_archive: dict[str, Any], two_users: list[dict[str, Any]]) -> None:
    config = make_config(auth={"enabled": True, "users": two_users})
    client = await make_client(config)
    alice_id = int((await create(client, api_archive, [(1, 3)], path="alice-case",
                                 headers=basic("alice"))).findtext("exportid"))
    inside = config.server.export_roots[0] / "alice-case" / str(alice_id)
    for path in (str(inside), str(inside / "sub"), f"alice-case/{alice_id}"):
        root = await create(client, api_archive, [(1, 3)], expect=-1004, path=path,
                            headers=basic("bob"))
        assert "inside an existing export" in (root.findtext("description") or "")
    assert not (inside / "sub").exists()
