"""Export workers and the queue under abuse: a stalled worker, a hostile working directory,
retry storms, and one user trying to take the whole queue."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from apiclient import command, export_body, wait_export
from conftest import API_DEVICES, API_SERVER_ID, BIG_DEVICE

from sense_plugin.testing.serverprocess import free_port
from sense_plugin.timestamps import format_timestamp

STEADY, GAPPY = API_DEVICES["Steady"], API_DEVICES["Gappy"]


def writer_of(part_suffix: str, under: Path) -> int | None:
    """The pid of the process that holds a ``*.part`` file under ``under`` open."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.endswith(part_suffix) and target.startswith(str(under)):
                    return int(pid)
        except OSError:
            continue
    return None


async def test_a_stopped_worker_is_detected_and_its_job_failed(
        make_client: Callable[..., Any], big_config: Callable[..., Any],
        big_archive: tuple[Path, int], tmp_path: Path) -> None:
    client = await make_client(big_config(stall_s=2))
    start = big_archive[1]
    body = export_body([(BIG_DEVICE, format_timestamp(start),
                         format_timestamp(start + 11_000_000))], bandwidth=8000)
    export_id = int((await command(client, "exportVideo", body=body)).findtext("exportid"))
    await wait_export(client, export_id, until=("SYNCING",))
    pid = None
    for _ in range(200):
        pid = writer_of(".part", tmp_path)
        if pid:
            break
        await asyncio.sleep(0.02)
    assert pid, "no worker holds the temporary file"
    os.kill(pid, signal.SIGSTOP)
    try:
        seen_zero = False
        deadline = time.monotonic() + 30
        while True:
            root = await command(client, "getExportVideoStatus", exportid=export_id)
            export = root.find("exports/export")
            if export.findtext("status") != "SYNCING":
                break
            seen_zero = seen_zero or export.findtext("bandwidth") == "0"
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    device = export.find("devices/device")
    assert seen_zero, "bandwidth must read 0 while nothing is written"
    assert device.findtext("status") == "FAILED"
    assert device.findtext("errorcode") == "-18"
    assert "no progress" in (device.findtext("description") or "")
    # the pool replaced the worker: the next export completes
    body = export_body([(BIG_DEVICE, format_timestamp(start),
                         format_timestamp(start + 2_000_000))])
    next_id = int((await command(client, "exportVideo", body=body)).findtext("exportid"))
    assert (await wait_export(client, next_id)).findtext("status") == "COMPLETED"


async def test_one_retry_per_export_even_when_asked_in_parallel(
        client: Any, api_archive: dict[str, Any]) -> None:
    late = format_timestamp(api_archive["start_us"] + 62_000_000)
    end = format_timestamp(api_archive["start_us"] + 64_000_000)
    root = await command(client, "exportVideo", body=export_body([(GAPPY, late, end)]))
    failed_id = int(root.findtext("exportid"))
    assert (await wait_export(client, failed_id)).findtext("status") == "FAILED"
    answers = await asyncio.gather(*(
        command(client, "exportVideo", action="retry", exportid=failed_id) for _ in range(200)))
    new_ids = {int(a.findtext("exportid")) for a in answers}
    assert len(new_ids) == 1 and new_ids != {failed_id}
    listing = await command(client, "getExportVideoStatus")
    assert len(listing.findall("exports/export")) == 2
    again = await command(client, "exportVideo", action="retry", exportid=failed_id)
    assert int(again.findtext("exportid")) in new_ids


async def test_one_user_cannot_take_the_whole_queue(
        make_client: Callable[..., Any], make_config: Callable[..., Any],
        api_archive: dict[str, Any]) -> None:
    from sense_plugin.passwords import hash_password

    users = [{"name": n, "password_hash": hash_password(f"{n}-pw"), "permissions": ["export"]}
             for n in ("greedy", "other")]
    config = make_config(auth={"enabled": True, "users": users},
                         export={"max_queued_jobs": 8, "max_queued_jobs_per_user": 4,
                                 "max_concurrent_jobs": 1})
    client = await make_client(config)

    def auth(user: str) -> dict[str, str]:
        import base64
        token = base64.b64encode(f"{user}:{user}-pw".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    start = api_archive["start_us"]
    slow = export_body([(STEADY, format_timestamp(start), format_timestamp(start + 50_000_000))],
                       bandwidth=50)
    await command(client, "exportVideo", body=slow, headers=auth("greedy"))  # runs
    codes = []
    for n in range(6):
        body = export_body([(STEADY, format_timestamp(start + n * 1_000_000),
                             format_timestamp(start + n * 1_000_000 + 500_000))])
        root = await command(client, "exportVideo", body=body, headers=auth("greedy"),
                             expect=None)
        codes.append(int(root.get("errorcode")))
    assert codes.count(0) == 4 and codes[-1] == -1005
    body = export_body([(STEADY, format_timestamp(start), format_timestamp(start + 500_000))])
    await command(client, "exportVideo", body=body, headers=auth("other"))  # still room


def test_workers_never_import_from_the_working_directory(
        tmp_path: Path, api_archive: dict[str, Any]) -> None:
    """Run as the installed ``sense-plugin`` script runs: its own directory first on sys.path,
    the working directory holding a ``queue.py`` that must never be imported."""
    work = tmp_path / "work"
    work.mkdir()
    marker = tmp_path / "imported"
    (work / "queue.py").write_text(
        f"open({str(marker)!r}, 'a').write('imported\\n')\nraise ImportError('hostile')\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "sense-plugin"
    script.write_text("import sys\nfrom sense_plugin.cli import main\n"
                      "if __name__ == '__main__':\n    sys.exit(main())\n")
    config = work / "sense.toml"
    steady = api_archive["dirs"]["Steady"]
    config.write_text(f'[server]\nserverid = "{API_SERVER_ID}"\ndata_dir = "data"\n'
                      f'[archive]\ndemo = false\n[[devices]]\ndeviceid = "{STEADY}"\n'
                      f'name = "Steady"\narchive_dir = "{steady}"\n')
    port = free_port()
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen([sys.executable, str(script), "serve", "--config", str(config),
                             "--port", str(port)], cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        export_once(port, api_archive)
    except AssertionError:
        proc.send_signal(signal.SIGTERM)
        raise AssertionError(proc.communicate(timeout=20)[0].decode()) from None
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=20)[0].decode()
    assert not marker.exists(), output


def export_once(port: int, archive: dict[str, Any]) -> None:
    import urllib.request

    from lxml import etree

    url = f"http://127.0.0.1:{port}/command?command="
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/info", timeout=2).read()
            break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    start = archive["start_us"]
    body = export_body([(STEADY, format_timestamp(start + 1_000_000),
                         format_timestamp(start + 3_000_000))]).encode()
    answer = etree.fromstring(urllib.request.urlopen(url + "exportVideo", body).read())
    export_id = answer.findtext("exportid")
    while True:
        status = etree.fromstring(urllib.request.urlopen(
            f"{url}getExportVideoStatus&exportid={export_id}").read())
        state = status.findtext("exports/export/status")
        if state in ("COMPLETED", "FAILED"):
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert state == "COMPLETED", etree.tostring(status).decode()


pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
