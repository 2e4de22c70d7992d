"""Login hardening over the real HTTP server with authentication on: limits counted
before hashing, per user and per address, unknown users hashed too, the bounded scrypt pool,
passwords kept as sent, logout and session revocation, HTTP Basic and its cache."""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from apiclient import command, parse_result

from sense_plugin.passwords import hash_password

PASSWORDS = {"alice": "alice-Pw-7f3a", "bob": "bob-Pw-91c2", "spacey": "  two  spaces  "}
Login = Callable[..., Awaitable[tuple[int, Any]]]


def basic(user: str, password: str | None = None) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password or PASSWORDS[user]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def login_body(user: str, password: str) -> bytes:
    return (f"<AuthenticateUser><username>{user}</username><password>{password}</password>"
            "</AuthenticateUser>").encode()


@pytest.fixture(scope="module")
def users() -> list[dict[str, Any]]:
    return [{"name": n, "password_hash": hash_password(p), "permissions": ["view", "export"]}
            for n, p in PASSWORDS.items()]


@pytest.fixture
def secure_with(make_client: Any, make_config: Any,
                users: list[dict[str, Any]]) -> Callable[..., Awaitable[Any]]:
    async def make(**auth: Any) -> Any:
        return await make_client(make_config(auth={"enabled": True, "users": users, **auth}))
    return make


@pytest.fixture
async def sessions() -> AsyncIterator[Callable[[str], aiohttp.ClientSession]]:
    """Client sessions bound to a loopback source address each (127.0.0.N: other clients)."""
    opened: list[aiohttp.ClientSession] = []

    def make(address: str) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(local_addr=(address, 0), limit=0)
        session = aiohttp.ClientSession(connector=connector)
        opened.append(session)
        return session

    yield make
    for session in opened:
        await session.close()


async def login(client: Any, user: str, password: str,
                session: aiohttp.ClientSession | None = None) -> tuple[int, Any]:
    """POST /webservice; returns (HTTP status, parsed result)."""
    poster = session.post if session is not None else client.post
    url = client.make_url("/webservice") if session is not None else "/webservice"
    response = await poster(url, data=login_body(user, password))
    return response.status, parse_result(await response.read(), None)


def outcome(status: int, root: Any) -> str:
    """checked (a hash said no), throttled, busy, or ok."""
    if root.get("errorcode") == "0":
        return "ok"
    text = root.findtext("description")
    if "too many failed logins" in text:
        return "throttled"
    if "being checked at once" in text:
        assert (status, root.get("errorcode")) == (503, "-1006")
        return "busy"
    if "login failures are being counted" in text:
        assert (status, root.get("errorcode")) == (503, "-1006")
        return "full"
    assert text == "invalid user name or password", text
    return "checked"


async def test_parallel_guesses_are_counted_before_hashing(secure_with: Any) -> None:
    client = await secure_with()
    guesses = [login(client, "alice", f"guess-{i}") for i in range(300)]
    outcomes = Counter(outcome(*r) for r in await asyncio.gather(*guesses))
    assert outcomes["checked"] <= 10, outcomes  # max_failures_per_address_user
    # the rest were refused without a hash: throttled, or busy (-1006) while 8 hashes ran
    assert outcomes["throttled"] + outcomes["busy"] == 300 - outcomes["checked"], outcomes
    for _ in range(10 - outcomes["checked"]):  # busy answers count no failure (a slow host)
        await login(client, "alice", "one-more-guess")
    status, root = await login(client, "alice", PASSWORDS["alice"])  # the right one, too late
    assert (status, outcome(status, root)) == (401, "throttled")
    assert "for this user from this address" in root.findtext("description")


async def test_one_address_cannot_lock_out_other_users(secure_with: Any) -> None:
    client = await secure_with()
    for i in range(12):
        await login(client, "alice", f"wrong-{i}")
    status, root = await login(client, "alice", PASSWORDS["alice"])
    assert outcome(status, root) == "throttled"
    status, root = await login(client, "bob", PASSWORDS["bob"])  # same address, other user
    assert outcome(status, root) == "ok"
    client.session.cookie_jar.clear()  # bob's session cookie would win over Basic
    await command(client, "getDeviceList", headers=basic("bob"))
    response = await client.get("/command", params={"command": "getDeviceList"},
                                headers=basic("alice"))
    assert response.status == 401  # alice's Basic login from this address is held back too


async def test_per_user_limit_spans_addresses(secure_with: Any, sessions: Any) -> None:
    client = await secure_with(max_failures_per_user=15)
    for address in ("127.0.0.2", "127.0.0.3"):
        for i in range(8):
            await login(client, "alice", f"wrong-{i}", sessions(address))
    fresh = sessions("127.0.0.4")
    status, root = await login(client, "alice", PASSWORDS["alice"], fresh)
    assert outcome(status, root) == "throttled"
    assert root.findtext("description").startswith("too many failed logins for this user;")
    assert outcome(*await login(client, "bob", PASSWORDS["bob"], fresh)) == "ok"
    # a spraying address is stopped too, whatever names it tries
    client = await secure_with(max_failures_per_address=5)
    sprayer = sessions("127.0.0.5")
    results = [outcome(*await login(client, f"user{i}", "123456", sprayer)) for i in range(8)]
    assert results == ["checked"] * 5 + ["throttled"] * 3
    assert outcome(*await login(client, "bob", PASSWORDS["bob"], sessions("127.0.0.6"))) == "ok"


async def test_unknown_users_cost_a_hash_like_wrong_passwords(secure_with: Any) -> None:
    """With one hash slot, a second check while an unknown user's check runs is refused: the
    unknown user's check really hashes (the timing figures are in bench/login_timing.py)."""
    client = await secure_with(max_pending_hashes=1)
    for first_user in ("nobody-here", "alice"):
        first, second = await asyncio.gather(login(client, first_user, "x-1"),
                                             login(client, "bob", "x-2"))
        assert outcome(*first) == "checked"
        assert outcome(*second) == "busy"
        assert first[1].findtext("description") == "invalid user name or password"


async def test_a_flood_is_refused_fast_not_queued(secure_with: Any) -> None:
    client = await secure_with(max_pending_hashes=3)
    flood = [login(client, f"user{i}", "guess") for i in range(60)]
    outcomes = Counter(outcome(*r) for r in await asyncio.gather(*flood))
    assert outcomes["checked"] >= 3 and outcomes["busy"] >= 40, outcomes
    response = await client.post("/webservice", data=login_body("user1", "x"))
    assert response.status in (401, 503)
    busy = [r for r in await asyncio.gather(*[client.post("/webservice",
                                                          data=login_body(f"u{i}", "x"))
                                              for i in range(20)]) if r.status == 503]
    assert busy and busy[0].headers["Retry-After"] == "1"
    await command(client, "getDeviceList", headers=basic("bob"))  # the server still serves


async def test_passwords_are_not_altered(secure_with: Any) -> None:
    client = await secure_with()
    assert outcome(*await login(client, "spacey", "two  spaces")) == "checked"
    assert outcome(*await login(client, "spacey", PASSWORDS["spacey"])) == "ok"
    await command(client, "getDeviceList", headers=basic("spacey"))


def session_cookie(key: str) -> dict[str, str]:
    return {"Cookie": f"sessionkey={key}"}


async def key_works(client: Any, key: str) -> bool:
    response = await client.get("/command", params={"command": "getDeviceList"},
                                headers=session_cookie(key))
    return response.status == 200


async def test_logout_revokes_the_session(secure_with: Any) -> None:
    client = await secure_with()
    client.session.cookie_jar.clear()
    _, root = await login(client, "alice", PASSWORDS["alice"])
    key = root.findtext("sessionkey")
    client.session.cookie_jar.clear()
    assert await key_works(client, key)
    response = await client.get("/command", params={"command": "logout"},
                                headers=session_cookie(key))
    assert parse_result(await response.read(), "logout").findtext("revoked") == "1"
    assert response.cookies["sessionkey"].value == ""  # the browser drops it
    assert not await key_works(client, key)
    response = await client.get("/command", params={"command": "getDeviceList"},
                                headers=session_cookie(key))
    assert "expired or unknown" in parse_result(await response.read(), None).findtext(
        "description")


async def test_login_again_replaces_the_old_session(secure_with: Any) -> None:
    client = await secure_with()
    _, root = await login(client, "alice", PASSWORDS["alice"])  # the jar keeps this cookie
    old = root.findtext("sessionkey")
    _, root = await login(client, "alice", PASSWORDS["alice"])  # ... and sends it again here
    new = root.findtext("sessionkey")
    client.session.cookie_jar.clear()
    assert not await key_works(client, old) and await key_works(client, new)


async def test_logout_all_revokes_every_session_even_with_basic(secure_with: Any,
                                                                sessions: Any) -> None:
    client = await secure_with(max_sessions_per_user=3)
    keys = []
    for i in range(4):  # each from its own client: no cookie of the previous one
        _, root = await login(client, "alice", PASSWORDS["alice"], sessions(f"127.0.1.{i}"))
        keys.append(root.findtext("sessionkey"))
    _, root = await login(client, "bob", PASSWORDS["bob"], sessions("127.0.2.1"))
    bobs = root.findtext("sessionkey")
    client.session.cookie_jar.clear()
    assert not await key_works(client, keys[0])  # pushed out by the cap of 3
    assert all([await key_works(client, k) for k in keys[1:]])
    root = await command(client, "logout", scope="all", headers=basic("alice"))
    assert root.findtext("revoked") == "3"
    assert not any([await key_works(client, k) for k in keys])
    assert await key_works(client, bobs)
    await command(client, "logout", scope="everything", headers=basic("alice"), expect=-22)


async def test_basic_cache_is_no_bypass(secure_with: Any) -> None:
    client = await secure_with(max_failures_per_address_user=3)
    await command(client, "getDeviceList", headers=basic("bob"))  # proven: remembered
    for i in range(3):
        response = await client.get("/command", params={"command": "getDeviceList"},
                                    headers=basic("bob", f"wrong-{i}"))
        assert response.status == 401
    # the remembered right password is not a guess: it still works ...
    await command(client, "getDeviceList", headers=basic("bob"))
    # ... but a wrong one is throttled, and a right one never proven before is held back
    for user, password in (("bob", "wrong-x"), ("bob", "wrong-y")):
        response = await client.get("/command", params={"command": "getDeviceList"},
                                    headers=basic(user, password))
        assert "too many failed logins" in parse_result(await response.read(), None).findtext(
            "description")
    for i in range(3):
        await login(client, "alice", f"wrong-{i}")
    response = await client.get("/command", params={"command": "getDeviceList"},
                                headers=basic("alice"))
    assert response.status == 401
    assert response.headers["Retry-After"].isdigit()


def test_dummy_hash_follows_the_users_parameters() -> None:
    from sense_plugin.api.passcheck import dummy_hash
    from sense_plugin.passwords import hash_params

    assert hash_params(dummy_hash((4096, 8, 1))) == (4096, 8, 1)
    assert hash_params(dummy_hash((3, 8, 1))) == (2**14, 8, 1)  # refused by scrypt: default
    assert hash_params("plain-text") is None


async def test_a_flood_of_new_names_cannot_push_a_victims_failures_out(secure_with: Any) -> None:
    # A small table stands for the default one; the attack is the same at any size.
    client = await secure_with(max_login_keys=32, max_pending_hashes=1)
    for i in range(10):
        await login(client, "alice", f"wrong-{i}")
    # Never hashed (busy): these must leave no counter behind.
    flood = await asyncio.gather(*(login(client, f"nobody-{i}", "x") for i in range(300)))
    outcomes = Counter(outcome(*r) for r in flood)
    assert outcomes["busy"] >= 200, outcomes
    # Hashed failures fill the table with live counters: new names are refused, nothing evicted.
    results = [outcome(*await login(client, f"filler-{i}", "x")) for i in range(40)]
    assert outcomes["checked"] + results.count("checked") == 15, (outcomes, results)
    assert results[-1] == "full", results
    status, root = await login(client, "new-name", "x")
    assert (status, root.get("errorcode")) == (503, "-1006")
    assert "login failures are being counted" in root.findtext("description")
    status, root = await login(client, "alice", PASSWORDS["alice"])  # still locked out
    assert (status, outcome(status, root)) == (401, "throttled")


async def test_one_address_has_failures_counted_for_a_bounded_number_of_names(
        secure_with: Any, sessions: Any) -> None:
    client = await secure_with(max_names_per_address=5)
    sprayer = sessions("127.0.0.2")
    for i in range(5):
        assert outcome(*await login(client, f"name-{i}", "x", sprayer)) == "checked"
    status, root = await login(client, "name-5", "x", sprayer)
    assert (status, root.get("errorcode")) == (401, "-1001")
    assert "too many user names tried from this address" in root.findtext("description")
    assert outcome(*await login(client, "name-0", "y", sprayer)) == "checked"  # a known name
    status, root = await login(client, "bob", PASSWORDS["bob"], sessions("127.0.0.3"))
    assert outcome(status, root) == "ok"  # other addresses are not held back
