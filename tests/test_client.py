"""The CLI client against a real server on loopback: export --wait, downloads, verify, status."""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from sense_plugin.cli import DEFAULT_SERVER, _parser, main
from sense_plugin.client.run import ProgressView, resolve_time
from sense_plugin.passwords import hash_password
from sense_plugin.timestamps import format_timestamp


@pytest.fixture
async def server(make_client: Any, make_config: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """URL of a real server with authentication on; alice's password is in SENSE_PASSWORD."""
    users = [{"name": "alice", "password_hash": hash_password("alice-pw"),
              "permissions": ["view", "export"]}]
    client = await make_client(make_config(auth={"enabled": True, "users": users}))
    monkeypatch.setenv("SENSE_PASSWORD", "alice-pw")
    return str(client.make_url("")).rstrip("/")


async def cli(*argv: str) -> int:
    """Run ``sense-plugin`` in a thread (it blocks on HTTP; the server shares this loop)."""
    return await asyncio.to_thread(main, list(argv))


async def test_export_wait_downloads_and_verifies(server: str, api_archive: dict[str, Any],
                                                  tmp_path: Path, capsys: Any) -> None:
    start = format_timestamp(api_archive["start_us"] + 3_000_000)
    end = format_timestamp(api_archive["start_us"] + 9_000_000)
    code = await cli("export", "--server", server, "--user", "alice", "--device", "Steady",
                     "--device", "Gappy", "--from", start, "--to", end, "--path", "cli",
                     "--wait", "--out", str(tmp_path / "got"), "--interval", "0.1")
    out = capsys.readouterr().out
    assert code == 0, out
    export_id = out.split()[1]
    assert f"export {export_id} Steady: COMPLETED 100%" in out
    assert f"export {export_id} Gappy: COMPLETED 100%" in out
    target = tmp_path / "got" / f"export-{export_id}"
    names = sorted(p.name for p in target.iterdir())
    assert len(names) == 4 and {"manifest.xml", "manifest.sig"} <= set(names)
    assert not any(".part" in n for n in names)
    assert main(["verify", str(target)]) == 0
    assert "verify: PASSED" in capsys.readouterr().out
    video = target / next(n for n in names if n.startswith("Steady"))
    video.write_bytes(video.read_bytes()[:-1] + b"\x00")  # tamper with one byte
    assert main(["verify", str(target)]) == 1
    assert f"MISMATCH {video.name}" in capsys.readouterr().out
    assert await cli("status", "--server", server, "--user", "alice") == 0
    listing = capsys.readouterr().out
    assert listing.startswith(f"{export_id}\tCOMPLETED\t100%") and "alice" in listing
    assert await cli("status", "--server", server, "--user", "alice", "--export", export_id,
                     "--watch") == 0
    watched = capsys.readouterr().out
    assert "COMPLETED 100%" in watched  # the outcome last, cameras in request order:
    assert watched.rstrip().endswith(f"export {export_id}: COMPLETED (Steady COMPLETED, "
                                     "Gappy COMPLETED)")


async def test_client_errors_are_named(server: str, api_archive: dict[str, Any], capsys: Any,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    start = format_timestamp(api_archive["start_us"])
    end = format_timestamp(api_archive["start_us"] + 1_000_000)
    base = ["export", "--server", server, "--user", "alice", "--from", start, "--to", end]
    assert await cli(*base, "--device", "NoSuchCamera") == 2
    assert "no device named 'NoSuchCamera'" in capsys.readouterr().err
    assert await cli(*base[:-2], "--to", "yesterday", "--device", "Steady") == 2
    assert "errorcode -4" in capsys.readouterr().err
    assert await cli("status", "--server", server, "--user", "alice", "--export", "777") == 2
    assert "errorcode -57" in capsys.readouterr().err
    monkeypatch.setenv("SENSE_PASSWORD", "wrong")
    assert await cli("status", "--server", server, "--user", "alice") == 2
    assert "errorcode -1001" in capsys.readouterr().err
    # no answer is not a refusal (docs/cli.rst): exit 3
    assert await cli("status", "--server", "http://127.0.0.1:9") == 3
    assert "cannot reach" in capsys.readouterr().err


def test_relative_times_use_the_server_clock() -> None:
    now = "2026-11-20 10:00:00.000"
    assert resolve_time("now", now) == now
    assert resolve_time("-90s", now) == "2026-11-20 09:58:30.000"
    assert resolve_time("-10m", now) == "2026-11-20 09:50:00.000"
    assert resolve_time("now-10M", now) == "2026-11-20 09:50:00.000"
    assert resolve_time("-1.5h", now) == "2026-11-20 08:30:00.000"
    assert resolve_time("2026-01-01 00:00:00", now) == "2026-01-01 00:00:00"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def device_xml(name: str, status: str, progress: int, size: int, kbps: int) -> str:
    return (f"<device><name>{name}</name><status>{status}</status><progress>{progress}"
            f"</progress><bytes>{size}</bytes><bandwidth>{kbps}</bandwidth></device>")


def test_progress_bars_on_a_terminal() -> None:
    clock = iter([100.0, 104.0])
    out = Terminal()
    view = ProgressView(out, clock=lambda: next(clock))
    for progress, size in ((10, 1_000_000), (50, 5_000_000)):
        export = etree.fromstring(
            "<export><exportid>5</exportid><devices>"
            + device_xml("Door", "SYNCING", progress, size, 8000)
            + device_xml("Parking lot", "SYNCING", progress, size, 8000)
            + "</devices></export>")
        view.update([export])
    view.close()
    lines = [line for line in re.split(r"[\r\n]|\x1b\[A", out.getvalue()) if "%|" in line]
    assert lines and all(line.lstrip().startswith("export 5 ") for line in lines)  # no bare 0%|
    assert lines[0].index("%|") == lines[1].index("%|")  # labels padded: the bars line up
    last = [line for line in lines if " 50%|" in line]
    assert last and "export 5 Door        SYNCING" in last[0]
    # 5 MB written, 8000 kbit/s measured, 10% -> 50% in 4 s: the other 50% take 5 s.
    assert last[0].rstrip().endswith("5.0 MB 1.0 MB/s ETA 0:05"), last[0]


def test_default_server_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENSE_SERVER", raising=False)
    assert _parser().parse_args(["status"]).server == DEFAULT_SERVER == "http://127.0.0.1:8080"
    monkeypatch.setenv("SENSE_SERVER", "http://10.0.0.5:8080")
    assert _parser().parse_args(["status"]).server == "http://10.0.0.5:8080"


async def test_watch_follows_only_unfinished_exports(server: str, api_archive: dict[str, Any],
                                                     capsys: Any, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENSE_SERVER", server)
    start = format_timestamp(api_archive["start_us"])
    done_end = format_timestamp(api_archive["start_us"] + 2_000_000)
    slow_end = format_timestamp(api_archive["start_us"] + 30_000_000)
    base = ["export", "--user", "alice", "--device", "Steady", "--from", start]
    assert await cli(*base, "--to", done_end, "--wait", "--out", "/dev/null/x") == 2
    assert "cannot create /dev/null/x/export-1: Not a directory" in capsys.readouterr().err
    assert await cli("status", "--user", "alice", "--watch") == 0
    assert capsys.readouterr().out == "no unfinished exports to watch\n"
    assert await cli(*base, "--to", slow_end, "--bandwidth", "400") == 0
    slow_id = capsys.readouterr().out.split()[1]
    assert await cli("status", "--user", "alice", "--watch", "--interval", "0.2") == 0
    watched = {line.split()[1].rstrip(":") for line in capsys.readouterr().out.splitlines()}
    assert watched == {slow_id}


async def test_closed_pipe_ends_quietly(server: str, api_archive: dict[str, Any]) -> None:
    """``sense-plugin status | head -1``: the reader is gone before the listing is written."""
    start = format_timestamp(api_archive["start_us"])
    assert await cli("export", "--server", server, "--user", "alice", "--device", "Steady",
                     "--from", start, "--to", format_timestamp(api_archive["end_us"])) == 0
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "sense_plugin", "status", "--server", server,
                             "--user", "alice"], stdout=write_end, stderr=subprocess.PIPE,
            timeout=60)
    finally:
        os.close(write_end)
    assert done.returncode == 1
    assert done.stderr == b"", done.stderr.decode()


async def test_snapshot_and_kind_options(server: str, api_archive: dict[str, Any],
                                         tmp_path: Path, capsys: Any) -> None:
    at = format_timestamp(api_archive["start_us"] + 12_000_000)
    base = ["--server", server, "--user", "alice", "--interval", "0.1"]
    code = await cli("snapshot", *base, "--device", "Steady", "--at", at, "--format", "png",
                     "--out", str(tmp_path / "snap"))
    out = capsys.readouterr().out
    assert code == 0, out
    export_id = out.split()[1]
    (image,) = (tmp_path / "snap" / f"export-{export_id}").glob("Steady_*.png")
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    start = format_timestamp(api_archive["start_us"] + 2_000_000)
    end = format_timestamp(api_archive["start_us"] + 8_000_000)
    code = await cli("export", *base, "--device", "Steady", "--from", start, "--to", end,
                     "--no-audio", "--max-file-size", "5", "--wait", "--out", str(tmp_path))
    assert code == 0
    export_id = capsys.readouterr().out.split()[1]
    assert await cli("status", *base, "--export", export_id) == 0
    assert capsys.readouterr().out.startswith(f"{export_id}\tCOMPLETED")
    code = await cli("export", *base, "--device", "Steady", "--from", start, "--to", end,
                     "--bandwidth", "60")
    running = capsys.readouterr().out.split()[1]
    assert await cli("export", *base, "--stop", running) == 0
    assert f"export {running} stopped:" in capsys.readouterr().out
    assert await cli("export", *base, "--stop", running) == 2  # finished: -22
    assert "-22" in capsys.readouterr().err
    assert await cli("export", *base, "--device", "Steady", "--from", start) == 2
    assert await cli("snapshot", *base, "--device", "Steady") == 2  # not recorded live: -22
