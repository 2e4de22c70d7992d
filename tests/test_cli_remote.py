"""The CLI's remote commands as a user runs them (a subprocess against a real server): stop and
remove, Ctrl-C while following, a FAILED export watched, errors naming what was typed,
``SENSE_USER``, and the one exit-code rule (docs/cli.rst)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from apiclient import command

from sense_plugin.cli import _parser
from sense_plugin.config import config_from_dict
from sense_plugin.passwords import hash_password
from sense_plugin.timestamps import format_timestamp

US = 1_000_000
BASIC = {"Authorization": "Basic YWxpY2U6YWxpY2UtcHc="}  # alice:alice-pw


@pytest.fixture
async def served(make_client: Any, make_config: Any) -> tuple[Any, dict[str, str]]:
    """A real server with authentication on; the environment a user of it would set."""
    users = [{"name": "alice", "password_hash": hash_password("alice-pw"),
              "permissions": ["view", "export"]}]
    client = await make_client(make_config(auth={"enabled": True, "users": users}))
    env = {**os.environ, "SENSE_SERVER": str(client.make_url("")).rstrip("/"),
           "SENSE_USER": "alice", "SENSE_PASSWORD": "alice-pw"}
    return client, env


async def run(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "sense_plugin", *argv], env=env,
        capture_output=True, text=True, timeout=60)


async def final_status(client: Any, export_id: str) -> str:
    for _ in range(600):
        root = await command(client, "getExportVideoStatus", exportid=export_id, headers=BASIC)
        status = root.findtext("exports/export/status") or ""
        if status in ("COMPLETED", "FAILED", "REMOVED"):
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"export {export_id} did not finish")


def slow_export(archive: dict[str, Any]) -> list[str]:
    """``export`` arguments of one camera's minute at 16 kbit/s: busy for minutes."""
    return ["export", "--device", "Steady", "--from", format_timestamp(archive["start_us"]),
            "--to", format_timestamp(archive["end_us"]), "--bandwidth", "16"]


async def test_stop_and_remove_by_id(served: tuple[Any, dict[str, str]],
                                     api_archive: dict[str, Any]) -> None:
    client, env = served
    created = await run(env, *slow_export(api_archive))  # SENSE_USER: no --user needed
    assert created.returncode == 0, created.stderr
    first = created.stdout.split()[1]
    stopped = await run(env, "stop", first)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.startswith(f"export {first} stopped: ")
    assert await final_status(client, first) == "COMPLETED"  # what it wrote is kept

    second = (await run(env, *slow_export(api_archive))).stdout.split()[1]
    removed = await run(env, "remove", second)
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.startswith(f"export {second} removed: ")
    assert await final_status(client, second) == "REMOVED"
    again = await run(env, "stop", second)  # refused: nothing was done
    assert again.returncode == 2 and f"export {second} is REMOVED" in again.stderr
    unknown = await run(env, "remove", "999")
    assert unknown.returncode == 2 and "999" in unknown.stderr


async def test_ctrl_c_while_following_says_the_export_goes_on(
        served: tuple[Any, dict[str, str]], api_archive: dict[str, Any]) -> None:
    client, env = served
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sense_plugin", *slow_export(api_archive), "--wait",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
    export_id = line.split()[1]
    assert line.startswith(f"export {export_id} created")
    await asyncio.sleep(0.5)  # following now
    process.send_signal(signal.SIGINT)
    err = (await asyncio.wait_for(process.stderr.read(), 60)).decode()
    assert await process.wait() == 130
    assert f"export {export_id} goes on on the server" in err
    assert f"sense-plugin stop {export_id}" in err and f"sense-plugin remove {export_id}" in err
    root = await command(client, "getExportVideoStatus", exportid=export_id, headers=BASIC)
    assert root.findtext("exports/export/status") in ("PENDING", "SYNCING")


async def test_watching_a_failed_export_exits_1_and_shows_its_error(
        make_client: Any, tmp_path: Path, api_archive: dict[str, Any]) -> None:
    """Recordings spoilt after they were indexed fail the export; ``status --watch`` says so
    with the device's error and exits 1."""
    spoilt = tmp_path / "spoilt"
    shutil.copytree(api_archive["dirs"]["Steady"], spoilt)
    users = [{"name": "alice", "password_hash": hash_password("alice-pw"),
              "permissions": ["view", "export"]}]
    config = config_from_dict({
        "server": {"serverid": "1", "data_dir": "data"}, "archive": {"demo": False},
        "auth": {"enabled": True, "users": users},
        "devices": [{"deviceid": "7", "name": "Spoilt", "archive_dir": str(spoilt)}]},
        base_dir=tmp_path)
    client = await make_client(config)
    for segment in spoilt.rglob("*.mp4"):  # indexed already; now unreadable as video
        segment.write_bytes(b"\0" * segment.stat().st_size)
    env = {**os.environ, "SENSE_SERVER": str(client.make_url("")).rstrip("/"),
           "SENSE_USER": "alice", "SENSE_PASSWORD": "alice-pw"}
    created = await run(env, "export", "--device", "Spoilt", "--from",
                        format_timestamp(api_archive["start_us"] + 12 * US), "--to",
                        format_timestamp(api_archive["start_us"] + 14 * US))
    assert created.returncode == 0, created.stderr
    export_id = created.stdout.split()[1]
    watched = await run(env, "status", "--export", export_id, "--watch", "--interval", "0.1")
    assert watched.returncode == 1, watched.stdout + watched.stderr
    assert f"export {export_id}: FAILED" in watched.stdout
    assert f"export {export_id} Spoilt: FAILED -" in watched.stdout, watched.stdout
    listed = await run(env, "status", "--export", export_id)
    assert listed.returncode == 0  # showing a status is done, whatever the status


async def test_errors_name_what_was_typed_and_exit_codes(
        served: tuple[Any, dict[str, str]], api_archive: dict[str, Any]) -> None:
    _, env = served
    future = await run(env, "export", "--device", "Steady", "--from", "now-10s", "--to",
                       "2099-01-01 00:00:00")
    assert future.returncode == 2
    assert "device 'Steady' (" in future.stderr, future.stderr
    unknown = await run(env, "export", "--device", "Nope", "--from", "now-10s", "--to", "now")
    assert unknown.returncode == 2 and "no device named 'Nope'" in unknown.stderr
    usage = await run(env, "export", "--device", "Steady")
    assert usage.returncode == 2
    nobody = await run({**env, "SENSE_USER": "mallory"}, "status")
    assert nobody.returncode == 2 and "-1001" in nobody.stderr
    away = await run(env, "status", "--server", "http://127.0.0.1:9")
    assert away.returncode == 3 and "cannot reach http://127.0.0.1:9" in away.stderr


def test_every_export_option_is_described() -> None:
    parser = _parser()
    sub = next(a for a in parser._actions if a.dest == "==SUPPRESS==" or a.choices)
    assert sub.choices is not None
    for name in ("export", "stop", "remove", "status", "snapshot"):
        command_parser = sub.choices[name]
        undescribed = [a.option_strings or [a.dest] for a in command_parser._actions
                       if not a.help]
        assert undescribed == [], (name, undescribed)
    assert sub.choices["export"].description
