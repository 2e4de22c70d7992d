"""The CLI client against a real server on loopback: export --wait, downloads, verify, status."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from sense_plugin.cli import main
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
    assert len(names) == 3 and "manifest.xml" in names and not any(".part" in n for n in names)
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
    assert "COMPLETED 100%" in capsys.readouterr().out


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
    assert await cli("status", "--server", "http://127.0.0.1:9") == 2
    assert "cannot reach" in capsys.readouterr().err


def test_relative_times_use_the_server_clock() -> None:
    now = "2026-11-20 10:00:00.000"
    assert resolve_time("now", now) == now
    assert resolve_time("-90s", now) == "2026-11-20 09:58:30.000"
    assert resolve_time("-10m", now) == "2026-11-20 09:50:00.000"
    assert resolve_time("now-10M", now) == "2026-11-20 09:50:00.000"
    assert resolve_time("-1.5h", now) == "2026-11-20 08:30:00.000"
    assert resolve_time("2026-01-01 00:00:00", now) == "2026-01-01 00:00:00"


def test_progress_bars_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    view = ProgressView(out)
    export = etree.fromstring("<export><exportid>5</exportid><devices><device><name>Door</name>"
                              "<status>SYNCING</status><progress>42</progress></device>"
                              "</devices></export>")
    view.update([export])
    view.close()
    assert "export 5 Door" in out.getvalue() and "42%" in out.getvalue()
    assert "SYNCING" in out.getvalue()
