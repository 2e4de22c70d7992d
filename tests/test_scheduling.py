"""Scheduling across users over the real server with authentication on (export/dispatch.py,
export/fairness.py, export/admission.py): no user holds every worker, live exports count in
the queue limits, and another user's short export is not stuck behind a long queue."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from apiclient import command, export_body
from conftest import API_DEVICES
from lxml import etree

from sense_plugin.passwords import hash_password
from sense_plugin.testing.serverprocess import ServerProcess
from sense_plugin.timestamps import format_timestamp, now_us, parse_timestamp

ENTRANCE, PARKING = "9890179877273119875", "9890179877273119876"
PASSWORDS = {"alice": "alice-Pw-31", "bob": "bob-Pw-77"}
US = 1_000_000


def basic(user: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def users_toml() -> str:
    return "".join(f'[[auth.users]]\nname = "{n}"\npassword_hash = "{hash_password(p)}"\n'
                   'permissions = ["view", "export"]\n' for n, p in PASSWORDS.items())


class AuthServer(ServerProcess):
    """The real server with live demo cameras; commands sent as one of the users."""

    def send(self, user: str, query: str, data: bytes | None = None) -> etree._Element:
        request = urllib.request.Request(f"{self.url}/command?command={query}", data=data,
                                         headers=basic(user))
        with urllib.request.urlopen(request, timeout=10) as response:
            return etree.fromstring(response.read())

    def export(self, user: str, body: str) -> etree._Element:
        return self.send(user, "exportVideo", body.encode())

    def status(self, user: str, export_id: str) -> str:
        root = self.send(user, f"getExportVideoStatus&exportid={export_id}")
        return root.findtext("exports/export/status") or ""

    def covered(self, device: str, start_us: int, end_us: int) -> bool:
        root = self.send("alice", f"getRecordings&deviceid={device}")
        return any(parse_timestamp(i.findtext("starttime") or "") <= start_us and
                   parse_timestamp(i.findtext("endtime") or "") >= end_us
                   for i in root.iterfind("recordings/intervals/interval"))


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Callable[[str], AuthServer]]:
    started: list[AuthServer] = []

    def start(export_toml: str) -> AuthServer:
        config = tmp_path / "sense.toml"
        config.write_text(f'[server]\nserverid = "7015498111931795223"\ndata_dir = "data"\n'
                          f"[auth]\nenabled = true\n{users_toml()}"
                          f"[archive]\ndemo = true\ndemo_minutes = 0.2\n[export]\n{export_toml}")
        server = AuthServer(config, tmp_path / "server.log")
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:  # live jobs still waiting for a worker do not hold up the stop
        assert server.stop() == 0
        assert "Traceback" not in server.log_path.read_text()


def live_body(device: str, start_us: int, end: str = "", render: str = "") -> str:
    end_xml = f"<endtime>{end}</endtime>" if end else ""
    return (f"<export><devices><device><deviceid>{device}</deviceid><starttime>"
            f"{format_timestamp(start_us)}</starttime>{end_xml}</device></devices>"
            f"<mode>live</mode><keepalive>0</keepalive>{render}</export>")


def test_live_exports_of_one_user_leave_a_worker_for_another(
        live_server: Callable[[str], AuthServer]) -> None:
    server = live_server("max_concurrent_jobs = 2\n")
    begun_us = now_us()
    held = [server.export("alice", live_body(ENTRANCE, now_us() - US)).findtext("exportid")
            for _ in range(3)]  # the third still waits for a worker at the shutdown
    assert all(held), "live exports refused"
    span = (begun_us - 10 * US, begun_us - 5 * US)
    wait_for(lambda: server.covered(PARKING, *span), 30, "the demo backfill")
    body = export_body([(int(PARKING), format_timestamp(span[0]), format_timestamp(span[1]))])
    other = server.export("bob", body).findtext("exportid") or ""
    wait_for(lambda: server.status("bob", other) == "COMPLETED", 60,
             "bob's export while alice holds live exports")
    assert [server.status("alice", i or "") for i in held] == ["SYNCING"] * 3
    # alice's second live export never had a worker: stopped, it wrote nothing
    second = server.send("alice", f"exportVideo&action=stop&exportid={held[1]}")
    assert second.findtext("status") == "REMOVED", etree.tostring(second).decode()
    first = server.send("alice", f"exportVideo&action=stop&exportid={held[0]}")
    assert first.findtext("status") == "COMPLETED", etree.tostring(first).decode()


def test_live_exports_count_in_the_queue_limits(
        live_server: Callable[[str], AuthServer]) -> None:
    server = live_server("max_queued_jobs = 4\nmax_queued_jobs_per_user = 2\n")
    end = format_timestamp(now_us() + 120 * US)
    render = "<render><quality>low</quality></render>"  # waits for its end without a worker

    def codes(user: str, count: int) -> list[int]:
        return [int(server.export(user, live_body(ENTRANCE, now_us() - US, end, render))
                    .get("errorcode") or "") for _ in range(count)]

    assert codes("alice", 3) == [0, 0, -1005]  # her share of the queue: 2 device jobs
    assert codes("bob", 2) == [0, 0]
    root = server.export("bob", export_body([(int(PARKING), format_timestamp(now_us() - 9 * US),
                                               format_timestamp(now_us() - 8 * US))]))
    assert root.get("errorcode") == "-1005"  # the whole queue: 4 live jobs waiting
    listing = server.send("alice", "getExportVideoStatus")
    for export in listing.iterfind("exports/export"):
        server.send("alice", f"exportVideo&action=remove&exportid={export.findtext('exportid')}")


def test_live_exports_are_capped_per_user(live_server: Callable[[str], AuthServer]) -> None:
    server = live_server("max_live_jobs_per_user = 1\n")
    first = server.export("alice", live_body(ENTRANCE, now_us() - US))
    assert first.get("errorcode") == "0"
    second = server.export("alice", live_body(PARKING, now_us() - US))
    assert second.get("errorcode") == "-1005"
    assert "max_live_jobs_per_user" in (second.findtext("description") or "")
    assert server.export("bob", live_body(PARKING, now_us() - US)).get("errorcode") == "0"


# -- fair shares by cost (in-process server over the recorded API archive) ------------------

STEADY = API_DEVICES["Steady"]


@pytest.fixture
async def secure(make_client: Any, make_config: Any) -> Any:
    users = [{"name": n, "password_hash": hash_password(p), "permissions": ["view", "export"]}
             for n, p in PASSWORDS.items()]
    return await make_client(make_config(auth={"enabled": True, "users": users},
                                         export={"max_concurrent_jobs": 1}))


async def test_another_users_short_copy_is_not_queued_behind_long_renders(
        secure: Any, api_archive: dict[str, Any]) -> None:
    start = api_archive["start_us"]

    async def create(user: str, offset_s: int, seconds: int, **fields: Any) -> int:
        span = (STEADY, format_timestamp(start + offset_s * US),
                format_timestamp(start + (offset_s + seconds) * US))
        root = await command(secure, "exportVideo", body=export_body([span], **fields),
                             headers=basic(user))
        return int(root.findtext("exportid"))

    render = "<quality>low</quality>"
    # alice's first render holds the only worker (paced) until every other export is queued
    holder = await create("alice", 0, 20, bandwidth=16, render=render)
    renders = [await create("alice", offset, 20, render=render) for offset in (10, 25, 40)]
    copy = await create("bob", 40, 2)
    root = await command(secure, "getExportVideoStatus", exportid=holder,
                         headers=basic("alice"))
    assert root.findtext("exports/export/status") == "SYNCING"
    await command(secure, "exportVideo", action="stop", exportid=holder, headers=basic("alice"))
    finished: dict[int, int] = {}
    for export_id, user in [(copy, "bob"), *((r, "alice") for r in renders)]:
        export = await wait_export_as(secure, export_id, user)
        assert export.findtext("status") == "COMPLETED", etree.tostring(export).decode()
        finished[export_id] = parse_timestamp(export.findtext("expires"))
    # one worker: exports finish in the order they start; bob's copy comes right after the
    # render that held the worker, before alice's other renders (FIFO put it last)
    assert sorted(finished, key=finished.__getitem__) == [copy, *renders]


async def wait_export_as(client: Any, export_id: int, user: str) -> Any:
    """Poll the export's status as ``user`` until it has finished."""
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        root = await command(client, "getExportVideoStatus", exportid=export_id,
                             headers=basic(user))
        export = root.find("exports/export")
        if export.findtext("status") in ("COMPLETED", "FAILED", "REMOVED"):
            return export
        assert asyncio.get_running_loop().time() < deadline, etree.tostring(export).decode()
        await asyncio.sleep(0.05)


# -- bandwidth: a least share per device, and the stall watchdog sees paced jobs -------------

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


async def secure_client(make_client: Any, make_config: Any, **export: Any) -> Any:
    users = [{"name": n, "password_hash": hash_password(p), "permissions": ["view", "export"]}
             for n, p in PASSWORDS.items()]
    return await make_client(make_config(auth={"enabled": True, "users": users}, export=export))


async def test_a_bandwidth_under_the_least_share_per_device_is_refused(
        make_client: Any, make_config: Any, api_archive: dict[str, Any]) -> None:
    client = await secure_client(make_client, make_config)
    start = api_archive["start_us"]
    spans = [(device, format_timestamp(start), format_timestamp(start + 5 * US))
             for device in (STEADY, API_DEVICES["Matroska"])]
    root = await command(client, "exportVideo", body=export_body(spans, bandwidth=1),
                         headers=basic("alice"), expect=-22)
    assert "min_bandwidth_kbps" in root.findtext("description")
    await command(client, "exportVideo", body=export_body(spans, bandwidth=31),
                  headers=basic("alice"), expect=-22)  # 15.5 kbit/s per device
    root = await command(client, "exportVideo", body=export_body(spans, bandwidth=32),
                         headers=basic("alice"))
    listing = await command(client, "getExportVideoStatus", headers=basic("alice"))
    assert [e.findtext("exportid") for e in listing.iterfind("exports/export")] == \
        [root.findtext("exportid")]  # the refused ones left nothing behind


async def paced_export(client: Any, start_us: int) -> int:
    """A 40-s copy paced to the least bandwidth: its muxer buffer takes minutes to write."""
    body = export_body([(STEADY, format_timestamp(start_us),
                         format_timestamp(start_us + 40 * US))], bandwidth=16)
    root = await command(client, "exportVideo", body=body, headers=basic("alice"))
    return int(root.findtext("exportid"))


async def status_of(client: Any, export_id: int) -> Any:
    root = await command(client, "getExportVideoStatus", exportid=export_id,
                         headers=basic("alice"))
    return root.find("exports/export")


async def test_a_paced_job_whose_worker_stopped_is_failed_by_the_watchdog(
        make_client: Any, make_config: Any, api_archive: dict[str, Any],
        tmp_path: Path) -> None:
    client = await secure_client(make_client, make_config, stall_s=2)
    export_id = await paced_export(client, api_archive["start_us"])
    pid = None
    for _ in range(300):
        pid = writer_of(".part", tmp_path)
        if pid:
            break
        await asyncio.sleep(0.02)
    assert pid, "no worker holds the temporary file"
    os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 60
        while (export := await status_of(client, export_id)).findtext("status") == "SYNCING":
            assert time.monotonic() < deadline, "a paced job with a stopped worker runs on"
            await asyncio.sleep(0.1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    device = export.find("devices/device")
    assert device.findtext("errorcode") == "-18"
    assert "no progress" in (device.findtext("description") or "")


async def test_a_paced_job_that_moves_is_not_taken_for_stalled(
        make_client: Any, make_config: Any, api_archive: dict[str, Any]) -> None:
    client = await secure_client(make_client, make_config, stall_s=1)
    export_id = await paced_export(client, api_archive["start_us"])
    sizes = []
    for _ in range(4):  # four times the stall limit, paced all along
        await asyncio.sleep(1.0)
        export = await status_of(client, export_id)
        assert export.findtext("status") == "SYNCING", etree.tostring(export).decode()
        sizes.append(int(export.findtext("devices/device/bytes") or 0))
    assert sizes == sorted(sizes) and sizes[-1] > sizes[0]
    await command(client, "exportVideo", action="remove", exportid=export_id,
                  headers=basic("alice"))


async def test_paced_jobs_of_one_user_leave_a_worker_for_another(
        make_client: Any, make_config: Any, api_archive: dict[str, Any]) -> None:
    client = await secure_client(make_client, make_config, max_concurrent_jobs=2)
    start = api_archive["start_us"]
    spans = [(device, format_timestamp(start), format_timestamp(start + 40 * US))
             for device in (STEADY, API_DEVICES["Matroska"])]
    root = await command(client, "exportVideo", body=export_body(spans, bandwidth=32),
                         headers=basic("alice"))
    paced = int(root.findtext("exportid"))
    body = export_body([(STEADY, format_timestamp(start + 50 * US),
                         format_timestamp(start + 52 * US))])
    root = await command(client, "exportVideo", body=body, headers=basic("bob"))
    export = await wait_export_as(client, int(root.findtext("exportid")), "bob")
    assert export.findtext("status") == "COMPLETED"
    devices = (await status_of(client, paced)).iterfind("devices/device")
    # one paced device job runs; the other never borrowed the worker kept for others
    assert sorted(d.findtext("status") for d in devices) == ["PENDING", "SYNCING"]
    await command(client, "exportVideo", action="remove", exportid=paced,
                  headers=basic("alice"))
