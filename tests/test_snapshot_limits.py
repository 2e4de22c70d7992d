"""getSnapshot over the real server: its own bounded pool with a per-user share (authentication
on), an ETag known before any decode, and If-None-Match read as a list of entity tags."""

from __future__ import annotations

import asyncio
import base64
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from apiclient import parse_result
from conftest import API_DEVICES, API_SERVER_ID

from sense_plugin.config import config_from_dict
from sense_plugin.passwords import hash_password
from sense_plugin.timestamps import format_timestamp

STEADY = API_DEVICES["Steady"]
USERS = {"alice": "alice-Pw-7f3a", "bob": "bob-Pw-91c2", "carol": "carol-Pw-5d0e"}


def basic(user: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{USERS[user]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def own_archive(tmp_path: Path, api_archive: dict[str, Any]) -> Path:
    """A private copy of one recorded minute: a test may damage it."""
    directory = tmp_path / "Steady"
    shutil.copytree(api_archive["dirs"]["Steady"], directory)
    return directory


def config_of(tmp_path: Path, archive: Path, **http: Any) -> Any:
    users = [{"name": n, "password_hash": hash_password(p), "permissions": ["view"]}
             for n, p in USERS.items()]
    return config_from_dict({
        "server": {"serverid": str(API_SERVER_ID), "data_dir": "data"},
        "archive": {"demo": False}, "http": http, "auth": {"enabled": True, "users": users},
        "devices": [{"deviceid": str(STEADY), "name": "Steady", "archive_dir": str(archive)}],
    }, base_dir=tmp_path)


async def snapshot(client: Any, user: str, instant_us: int, **headers: str) -> Any:
    return await client.get("/command", params={
        "command": "getSnapshot", "deviceid": str(STEADY), "width": "32",
        "time": format_timestamp(instant_us)}, headers={**basic(user), **headers})


async def outcome(response: Any) -> str:
    body = await response.read()
    if response.status == 200:
        assert response.content_type == "image/jpeg", body[:300]
        return "image"
    root = parse_result(body, None)
    assert (response.status, root.get("errorcode")) == (503, "-1006"), body
    assert response.headers["Retry-After"] == "1"
    text = root.findtext("description")
    return "per-user" if "of user" in text else "pool-full" if "at once" in text else text


async def test_one_user_cannot_take_the_snapshot_pool(make_client: Any, tmp_path: Path,
                                                      own_archive: Path,
                                                      api_archive: dict[str, Any]) -> None:
    client = await make_client(config_of(tmp_path, own_archive, snapshot_threads=1,
                                         max_pending_snapshots=4, max_snapshots_per_user=2))
    start_us = api_archive["start_us"]
    for user in USERS:  # Basic checked once and cached: no hash in the way below
        await outcome(await snapshot(client, user, start_us))
    flood = [snapshot(client, "alice", start_us + i * 1_000_000) for i in range(24)]
    results = await asyncio.gather(*flood, snapshot(client, "bob", start_us + 500_000))
    outcomes = [await outcome(r) for r in results]
    assert outcomes[-1] == "image"  # bob's one snapshot got in beside alice's two
    alice = Counter(outcomes[:-1])
    assert alice["per-user"] >= 1 and alice["image"] >= 2 and "pool-full" not in alice, alice
    # Three users at their share fill the pool: a fourth request of anyone is refused.
    crowd = [snapshot(client, u, start_us + i * 1_000_000) for u in USERS for i in range(6)]
    assert "pool-full" in {await outcome(r) for r in await asyncio.gather(*crowd)}


async def test_a_revalidation_that_matches_decodes_nothing(make_client: Any, tmp_path: Path,
                                                           own_archive: Path,
                                                           api_archive: dict[str, Any]) -> None:
    client = await make_client(config_of(tmp_path, own_archive))
    instant_us = api_archive["start_us"] + 1_500_000
    first = await snapshot(client, "alice", instant_us)
    assert first.status == 200
    etag = first.headers["ETag"]
    # The recording can no longer be decoded: only an answer that decodes nothing succeeds.
    for segment in own_archive.rglob("*.mp4"):
        segment.write_bytes(b"\0" * segment.stat().st_size)
    for header in (etag, f'"other", {etag}', f"W/{etag}", "*"):
        again = await snapshot(client, "alice", instant_us, **{"If-None-Match": header})
        assert again.status == 304, header
        assert again.headers["ETag"] == etag and not await again.read()


async def test_if_none_match_is_a_list_of_entity_tags_not_a_substring(
        make_client: Any, tmp_path: Path, own_archive: Path,
        api_archive: dict[str, Any]) -> None:
    client = await make_client(config_of(tmp_path, own_archive))
    instant_us = api_archive["start_us"] + 2_500_000
    etag = (await snapshot(client, "alice", instant_us)).headers["ETag"]
    for header in (f'"x{etag}"', f"{etag[:-1]}-other\"", f'"a" {etag}', f"{etag}x", '"*"'):
        response = await snapshot(client, "alice", instant_us, **{"If-None-Match": header})
        assert response.status == 200, header
        assert response.headers["ETag"] == etag
