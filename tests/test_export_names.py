"""Every file name of an export belongs to one device: a name taken by one device is never
overwritten by another; the second device fails naming the file (media/parts.py, safefs)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
from apiclient import command, wait_export
from conftest import BUSY_DEVICE, BUSY_SECONDS
from lxml import etree

from sense_plugin import signing
from sense_plugin.cli import main
from sense_plugin.timestamps import format_timestamp

BUSY, BUSY_S = BUSY_DEVICE, BUSY_SECONDS


def device(start_us: int, end_us: int) -> str:
    return (f"<device><deviceid>{BUSY}</deviceid><starttime>{format_timestamp(start_us)}"
            f"</starttime><endtime>{format_timestamp(end_us)}</endtime></device>")


def public_key(config: Any, tmp_path: Path) -> Path:
    """The server's public key as ``getServerOptions`` publishes it, written to a file."""
    signer = signing.load_or_create(config.server.data_dir / signing.KEY_FILE, False)
    path = tmp_path / "public.pem"
    path.write_text(signer.public_pem)
    return path


def frames_of(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(container.streams.video[0]))


async def test_one_device_twice_in_one_gop_never_overwrites_the_others_parts(
        make_client: Callable[..., Any], busy_config: Any, busy_archive: tuple[Path, int],
        tmp_path: Path, capsys: Any) -> None:
    """Both ranges start inside one GOP, so their parts start at the same keyframes and
    get the same names; the ends differ, so the last parts differ in content."""
    t0 = busy_archive[1]
    end_us = t0 + BUSY_S * 1_000_000
    client = await make_client(busy_config)
    body = (f"<export><devices>{device(t0 + 2_000_000, end_us - 2_000_000)}"
            f"{device(t0 + 2_250_000, end_us - 5_000_000)}</devices>"
            "<maxfilesize>1</maxfilesize></export>")
    export_id = int((await command(client, "exportVideo", body=body)).findtext("exportid"))
    export = await wait_export(client, export_id, 120)
    statuses = [d.findtext("status") for d in export.iterfind("devices/device")]
    assert sorted(statuses) == ["COMPLETED", "FAILED"], etree.tostring(export).decode()
    failed = next(d for d in export.iterfind("devices/device") if d.findtext("status") ==
                  "FAILED")
    assert failed.findtext("errorcode") == "-18"
    assert "exists already" in failed.findtext("description") and \
        "_part" in failed.findtext("description")
    completed = next(d for d in export.iterfind("devices/device")
                     if d.findtext("status") == "COMPLETED")
    listed = {f.findtext("name"): f for f in completed.iterfind("files/file")}
    assert len(listed) >= 3
    directory = next(busy_config.server.export_roots[0].rglob("manifest.xml")).parent
    on_disk = {p.name for p in directory.iterdir()} - {"manifest.xml", "manifest.sig"}
    assert on_disk == set(listed)  # the failed device left nothing behind
    for name, info in listed.items():  # each file is the one its device wrote and claims
        data = (directory / name).read_bytes()
        assert len(data) == int(info.findtext("size"))
        assert hashlib.sha256(data).hexdigest() == info.findtext("sha256")
        assert frames_of(directory / name) == int(info.findtext("framecount"))
    code = main(["verify", str(directory), "--key", str(public_key(busy_config, tmp_path))])
    out = capsys.readouterr().out
    assert code == 1 and "EXPORT FAILED: 1 of 2 devices failed" in out, out
    assert "MISMATCH" not in out and "EXTRA" not in out and "MISSING" not in out, out
    assert sum(line.startswith("OK ") for line in out.splitlines()) == len(listed)


def test_a_final_name_is_never_replaced(tmp_path: Path) -> None:
    """The primitive every final name goes through: a taken name fails, both files stay."""
    from sense_plugin.errors import GeneralError
    from sense_plugin.safefs import rename_exclusive

    taken, mine = tmp_path / "cam_part001.mp4", tmp_path / "cam.mp4.p001.part"
    taken.write_bytes(b"the other device's part")
    mine.write_bytes(b"this device's part")
    try:
        rename_exclusive(str(mine), str(taken))
    except GeneralError as exc:
        assert "cam_part001.mp4" in exc.description and exc.code == -18
    else:
        raise AssertionError("a taken name was replaced")
    assert taken.read_bytes() == b"the other device's part" and mine.exists()
    rename_exclusive(str(mine), str(tmp_path / "cam_part002.mp4"))
    assert not mine.exists() and (tmp_path / "cam_part002.mp4").read_bytes() == \
        b"this device's part"
