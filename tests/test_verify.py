"""``sense-plugin verify`` over exports of the real app (authentication on): it names the
export it checked, fails an unsigned one unless told, warns about a directory that is not
that export's, and reports symlinks instead of reading through them (docs/verify.rst)."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

import pytest
from apiclient import command, export_body, wait_export
from conftest import API_DEVICES
from lxml import etree

from sense_plugin import signing
from sense_plugin.cli import main
from sense_plugin.passwords import hash_password
from sense_plugin.timestamps import format_timestamp

STEADY, GAPPY = API_DEVICES["Steady"], API_DEVICES["Gappy"]
ALICE = {"Authorization": "Basic " + base64.b64encode(b"alice:alice-pw").decode()}


@pytest.fixture
async def secure(make_client: Any, make_config: Any) -> tuple[Any, Any]:
    users = [{"name": "alice", "password_hash": hash_password("alice-pw"),
              "permissions": ["view", "export"]}]
    config = make_config(auth={"enabled": True, "users": users})
    return await make_client(config), config


async def export_as_alice(client: Any, archive: dict[str, Any], path: str,
                          *devices: tuple[int, float, float]) -> etree._Element:
    base = archive["start_us"]
    items = [(d, format_timestamp(base + int(a * 1e6)), format_timestamp(base + int(b * 1e6)))
             for d, a, b in devices]
    root = await command(client, "exportVideo", body=export_body(items, path=path),
                         headers=ALICE)
    export_id = int(root.findtext("exportid"))
    export = await wait_export_as(client, export_id, 30)
    assert export.findtext("status") == "COMPLETED", etree.tostring(export).decode()
    return export


async def wait_export_as(client: Any, export_id: int, timeout_s: float) -> etree._Element:
    client.session.headers.update(ALICE)  # wait_export sends no headers of its own
    return await wait_export(client, export_id, timeout_s)


def verify(capsys: Any, *argv: str) -> tuple[int, str]:
    code = main(["verify", *argv])
    return code, capsys.readouterr().out


def public_key(config: Any, tmp_path: Path) -> str:
    signer = signing.load_or_create(config.server.data_dir / signing.KEY_FILE, False)
    path = tmp_path / "public.pem"
    path.write_text(signer.public_pem)
    return str(path)


async def test_verify_names_the_export_and_fails_without_a_signature(
        secure: tuple[Any, Any], api_archive: dict[str, Any], tmp_path: Path,
        capsys: Any) -> None:
    client, config = secure
    export = await export_as_alice(client, api_archive, "case-a", (STEADY, 1, 3), (GAPPY, 2, 4))
    export_id = export.findtext("exportid")
    directory = config.server.export_roots[0] / "case-a" / export_id
    key = public_key(config, tmp_path)
    code, out = verify(capsys, str(directory), "--key", key)
    assert code == 0 and "verify: PASSED" in out, out
    assert f"EXPORT {export_id} owner alice path 'case-a' status COMPLETED" in out
    for device in export.iterfind("devices/device"):
        assert (f"DEVICE {device.findtext('deviceid')} ({device.findtext('name')}) "
                f"{device.findtext('starttime')} to {device.findtext('endtime')}: "
                "COMPLETED") in out
    assert "WARNING" not in out
    (directory / "manifest.sig").unlink()
    for argv in ([str(directory)], [str(directory), "--key", key]):
        code, out = verify(capsys, *argv)
        assert code == 1 and "MISSING manifest.sig" in out and "--unsigned" in out, out
    code, out = verify(capsys, str(directory), "--unsigned")
    assert code == 0 and "UNSIGNED manifest.xml" in out, out


async def test_another_exports_signed_files_in_a_directory_do_not_pass_silently(
        secure: tuple[Any, Any], api_archive: dict[str, Any], tmp_path: Path,
        capsys: Any) -> None:
    client, config = secure
    first = await export_as_alice(client, api_archive, "case-a", (STEADY, 1, 3))
    second = await export_as_alice(client, api_archive, "case-b", (STEADY, 5, 8))
    root = config.server.export_roots[0]
    first_dir = root / "case-a" / first.findtext("exportid")
    second_dir = root / "case-b" / second.findtext("exportid")
    for path in first_dir.iterdir():  # export 2's signed files put in export 1's directory
        path.unlink()
    for path in second_dir.iterdir():
        shutil.copy2(path, first_dir / path.name)
    code, out = verify(capsys, str(first_dir), "--key", public_key(config, tmp_path))
    assert f"EXPORT {second.findtext('exportid')} owner alice path 'case-b'" in out, out
    assert (f"WARNING this directory ({first.findtext('exportid')}) is not named after export "
            f"{second.findtext('exportid')}") in out, out
    assert "SIGNATURE OK" in out and code == 0  # the files are intact: only their place is not


async def test_verify_reports_symlinks_and_never_reads_through_them(
        secure: tuple[Any, Any], api_archive: dict[str, Any], tmp_path: Path,
        capsys: Any) -> None:
    client, config = secure
    export = await export_as_alice(client, api_archive, "case-s", (STEADY, 1, 3))
    directory = config.server.export_roots[0] / "case-s" / export.findtext("exportid")
    key = public_key(config, tmp_path)
    video = directory / export.findtext("devices/device/files/file/name")
    elsewhere = tmp_path / "elsewhere.mp4"
    shutil.move(video, elsewhere)  # the same bytes, reached through a link
    video.symlink_to(elsewhere)
    code, out = verify(capsys, str(directory), "--key", key)
    assert code == 1 and f"SYMLINK {video.name} -> {elsewhere}" in out, out
    assert f"OK {video.name}" not in out
    shutil.move(elsewhere, video)
    (directory / "notes.txt").symlink_to("/etc/passwd")
    code, out = verify(capsys, str(directory), "--key", key)
    assert code == 1 and "SYMLINK notes.txt -> /etc/passwd" in out and "EXTRA notes.txt" in out
    (directory / "notes.txt").unlink()
    manifest = directory / "manifest.xml"
    shutil.move(manifest, tmp_path / "manifest.xml")
    manifest.symlink_to(tmp_path / "manifest.xml")
    code, out = verify(capsys, str(directory), "--key", key)
    assert code == 1 and "symlink" in out and "manifest.xml" in out, out
