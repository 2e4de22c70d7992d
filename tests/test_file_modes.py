"""The real ``serve`` started under a loose umask (022, the usual login default) keeps what it
writes from other local accounts: directories 0750, files 0640 at most, ``data_dir`` closed."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from sense_plugin.testing.serverprocess import ServerProcess
from sense_plugin.timestamps import format_timestamp, parse_timestamp

DEVICE = "9890179877273119875"


def loose_umask() -> None:
    os.umask(0o022)


def wait_export(server: ServerProcess, export_id: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        root = server.command(f"getExportVideoStatus&exportid={export_id}")
        if root.findtext("exports/export/status") in ("COMPLETED", "FAILED"):
            assert root.findtext("exports/export/status") == "COMPLETED"
            return
        time.sleep(0.2)
    raise AssertionError("export did not finish")


def loose_entries(root: Path) -> list[str]:
    """Every entry under ``root`` (itself included) that grants more than 0750 / 0640."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        allowed = 0o750 if path.is_dir() else 0o640
        if not path.is_symlink() and mode & ~allowed:
            found.append(f"{path.relative_to(root)} {mode:o}")
    return found


def test_serve_under_umask_022_writes_nothing_others_can_read(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)  # an earlier, looser run made it
    os.chmod(data, 0o755)
    config = tmp_path / "sense.toml"
    config.write_text(f"""
[server]
serverid = "7015498111931795223"
data_dir = "data"
[archive]
demo = true
demo_minutes = 1
[[devices]]
deviceid = "{DEVICE}"
name = "Entrance"
""")
    server = ServerProcess(config, tmp_path / "server.log")
    server.start(preexec_fn=loose_umask)
    try:
        deadline = time.monotonic() + 60
        while True:  # three seconds recorded (live first: the back-fill comes after)
            device = server.command("getServerStatus").find("serverstatus/devices/device")
            first = device.findtext("firstrecordedimage") if device is not None else None
            last = device.findtext("lastrecordedimage") if device is not None else None
            if first and last and parse_timestamp(last) - parse_timestamp(first) > 3_500_000:
                break
            assert time.monotonic() < deadline, "demo archive not ready"
            time.sleep(0.2)
        start_us = parse_timestamp(first)
        body = (f"<export><devices><device><deviceid>{DEVICE}</deviceid>"
                f"<starttime>{format_timestamp(start_us)}</starttime>"
                f"<endtime>{format_timestamp(start_us + 3_000_000)}</endtime>"
                "</device></devices></export>").encode()
        wait_export(server, server.command("exportVideo", body).findtext("exportid"))
    finally:
        assert server.stop() == 0
    kinds = {p.suffix for p in data.rglob("*") if p.is_file()}
    assert {".mp4", ".sqlite3", ".xml"} <= kinds, kinds  # recordings, stores, an export
    assert loose_entries(data) == []
