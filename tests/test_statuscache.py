"""The export list cache: answers are reused while nothing changed, and never stale — not
for a running export's progress, a status change, another user, a filter or a page."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

from apiclient import command, export_body
from conftest import API_DEVICES, WriteSegment
from livesource import DEVICE, live_client

from sense_plugin.api.statuscache import STATUS_CACHE
from sense_plugin.passwords import hash_password
from sense_plugin.timestamps import format_timestamp, now_us

USERS = {"alice": "alice-pw", "bob": "bob-pw"}


def basic(user: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{USERS[user]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def listing(client: Any, user: str, **params: Any) -> dict[str, tuple[str, int]]:
    root = await command(client, "getExportVideoStatus", headers=basic(user), **params)
    return {e.findtext("exportid"): (e.findtext("status"), int(e.findtext("progress")))
            for e in root.iterfind("exports/export")}


def auth_config(make_config: Callable[..., Any]) -> Any:
    """Authentication on, with alice and bob allowed to view and export."""
    users = [{"name": n, "password_hash": hash_password(p), "permissions": ["view", "export"]}
             for n, p in USERS.items()]
    return make_config(auth={"enabled": True, "users": users})


async def test_list_is_cached_yet_never_stale(make_client: Callable[..., Any],
                                              make_config: Callable[..., Any],
                                              api_archive: dict[str, Any]) -> None:
    client = await make_client(auth_config(make_config))
    cache = client.app[STATUS_CACHE]
    steady = API_DEVICES["Steady"]
    start = format_timestamp(api_archive["start_us"])
    end = format_timestamp(api_archive["end_us"])
    quick = await command(client, "exportVideo", headers=basic("bob"),
                          body=export_body([(steady, start, end)]))
    bob_id = quick.findtext("exportid")
    while (await listing(client, "bob", exportid=bob_id))[bob_id][0] != "COMPLETED":
        await asyncio.sleep(0.05)
    slow_end = format_timestamp(api_archive["start_us"] + 25_000_000)
    slow = await command(client, "exportVideo", headers=basic("alice"),
                         body=export_body([(steady, start, slow_end)], bandwidth=250))
    alice_id = slow.findtext("exportid")

    first = await listing(client, "alice")
    hits = cache.hits
    assert list(first) == [alice_id]  # bob's export is not alice's
    assert list(await listing(client, "bob")) == [bob_id]
    assert list(await listing(client, "alice", status="COMPLETED")) == []
    assert list(await listing(client, "bob", status="COMPLETED", limit=1)) == [bob_id]

    seen: list[int] = []
    while True:  # the list follows the running export's progress as by-id does
        by_id = await command(client, "getExportVideoStatus", headers=basic("alice"),
                              exportid=alice_id)
        status = by_id.findtext("exports/export/status")
        progress = int(by_id.findtext("exports/export/progress"))
        listed_status, listed_progress = (await listing(client, "alice"))[alice_id]
        assert listed_progress >= progress
        seen.append(listed_progress)
        if status == "COMPLETED":
            assert listed_status == "COMPLETED"
            break
        await asyncio.sleep(0.05)
    assert len(set(seen)) >= 3  # it moved while polled
    assert cache.hits > hits  # and unchanged answers came from the cache
    assert cache.rerenders > 0  # progress alone: the same exports rendered again

    await command(client, "exportVideo", headers=basic("alice"), action="remove",
                  exportid=alice_id)
    assert (await listing(client, "alice"))[alice_id][0] == "REMOVED"


async def test_status_by_id_of_a_finished_export_is_cached_yet_never_stale(
        make_client: Callable[..., Any], make_config: Callable[..., Any],
        api_archive: dict[str, Any]) -> None:
    """A finished export asked for by id is answered from the cache while nothing changed (it
    would be read from the store each time); a removal shows at once, another user still gets
    -57, and an export still running is never answered from the cache (a request for it is its
    keepalive)."""
    client = await make_client(auth_config(make_config))
    cache = client.app[STATUS_CACHE]
    steady = API_DEVICES["Steady"]
    start = format_timestamp(api_archive["start_us"])
    end = format_timestamp(api_archive["start_us"] + 4_000_000)
    created = await command(client, "exportVideo", headers=basic("bob"),
                            body=export_body([(steady, start, end)], bandwidth=250))
    bob_id = created.findtext("exportid")

    async def by_id(user: str = "bob", expect: int | None = 0) -> Any:
        return await command(client, "getExportVideoStatus", headers=basic(user),
                             exportid=bob_id, expect=expect)

    while (await by_id()).findtext("exports/export/status") != "COMPLETED":
        hits = cache.hits
        await by_id()
        assert cache.hits == hits  # running: asked of the engine every time
        await asyncio.sleep(0.02)
    first = await by_id()
    hits = cache.hits
    assert first.findtext("exports/export/exportid") == bob_id
    again = await by_id()
    assert cache.hits == hits + 1
    sha = "exports/export/devices/device/files/file/sha256"
    assert again.findtext(sha) == first.findtext(sha) is not None
    await by_id("alice", expect=-57)  # bob's cached answer is not alice's
    await command(client, "exportVideo", headers=basic("bob"), action="remove",
                  exportid=bob_id)
    assert (await by_id()).findtext("exports/export/status") == "REMOVED"


async def test_a_cached_list_still_counts_as_keepalive(make_client: Callable[..., Any],
                                                        tmp_path: Path,
                                                        write_segment: WriteSegment) -> None:
    """A live export waiting for the one worker moves no counter, so polls of a list showing
    it are answered from the cache: they must still keep it alive (docs/exports.rst)."""
    client = await live_client(make_client, tmp_path, write_segment, 60.0,
                               max_concurrent_jobs=1)
    cache = client.app[STATUS_CACHE]

    async def live(keepalive_s: int) -> str:
        body = (f"<export><devices><device><deviceid>{DEVICE}</deviceid><starttime>"
                f"{format_timestamp(now_us())}</starttime></device></devices>"
                f"<mode>live</mode><keepalive>{keepalive_s}</keepalive></export>")
        return (await command(client, "exportVideo", body=body)).findtext("exportid") or ""

    await live(0)  # holds the worker, no end and no keepalive
    waiting = await live(2)
    hits = cache.hits
    deadline = asyncio.get_running_loop().time() + 5  # well past the keepalive
    while asyncio.get_running_loop().time() < deadline:
        page = await command(client, "getExportVideoStatus", limit=1)  # newest: the waiting
        assert page.findtext("exports/export/exportid") == waiting
        await asyncio.sleep(0.25)
    assert cache.hits > hits + 5  # the polls were answered from the cache
    root = await command(client, "getExportVideoStatus", exportid=waiting)
    assert root.findtext("exports/export/status") in ("PENDING", "SYNCING"), \
        "the keepalive stopped an export that was polled"


async def test_a_stop_shows_in_a_cached_list_at_once(make_client: Callable[..., Any],
                                                     tmp_path: Path,
                                                     write_segment: WriteSegment) -> None:
    """A stopped live export waiting for its last segment moves no progress, status or byte
    counter, but its device now says ``stopped`` and ends earlier: a list answered from the
    cache must show that as status by id does."""
    client = await live_client(make_client, tmp_path, write_segment, 60.0)
    body = (f"<export><devices><device><deviceid>{DEVICE}</deviceid><starttime>"
            f"{format_timestamp(now_us())}</starttime><endtime>"
            f"{format_timestamp(now_us() + 600_000_000)}</endtime></device></devices>"
            "<mode>live</mode><timestamps>subtitle</timestamps></export>")
    export_id = (await command(client, "exportVideo", body=body)).findtext("exportid") or ""

    async def device(**params: Any) -> tuple[str | None, str | None]:
        root = await command(client, "getExportVideoStatus", **params)
        found = root.find(f"exports/export[exportid='{export_id}']/devices/device")
        assert found is not None
        return found.findtext("stopped"), found.findtext("endtime")

    await device()
    await device()  # the list is cached now, its progress moving every few seconds only
    stop = asyncio.create_task(command(client, "exportVideo", action="stop",
                                       exportid=export_id))
    try:
        while (by_id := await device(exportid=export_id))[0] != "true":
            assert not stop.done(), "the export was stopped and finished unseen"
            await device()
            await asyncio.sleep(0.02)
        assert await device() == by_id  # stopped, with its new end, in the list too
    finally:
        await stop
