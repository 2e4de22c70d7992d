"""Authentication and permissions (docs/authentication.rst) against the real app."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from apiclient import command, parse_result

from sense_plugin.passwords import hash_password

PASSWORDS = {"viewer": "v-secret", "operator": "o-secret", "boss": "b-secret"}
PERMS = {"viewer": ["view"], "operator": ["view", "export"], "boss": ["admin"]}


def basic(user: str, password: str | None = None) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password or PASSWORDS[user]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture(scope="module")
def users() -> list[dict[str, Any]]:
    return [{"name": n, "password_hash": hash_password(p), "permissions": PERMS[n]}
            for n, p in PASSWORDS.items()]


@pytest.fixture
async def secure(make_client: Any, make_config: Any, users: list[dict[str, Any]]) -> Any:
    return await make_client(make_config(auth={"enabled": True, "users": users,
                                               "session_idle_s": 1}))


def login_body(user: str, password: str) -> bytes:
    return (f"<AuthenticateUser><UserName>{user}</UserName><Password>{password}</Password>"
            "</AuthenticateUser>").encode()


async def test_command_needs_credentials(secure: Any) -> None:
    response = await secure.get("/command", params={"command": "getDeviceList"})
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert parse_result(await response.read(), None).get("errorcode") == "-1001"
    assert (await secure.get("/info")).status == 200


async def test_basic_auth_and_permissions(secure: Any) -> None:
    await command(secure, "getDeviceList", headers=basic("viewer"))
    await command(secure, "exportVideo", body="<export/>", headers=basic("viewer"), expect=-1002)
    await command(secure, "exportVideo", body="<export/>", headers=basic("operator"), expect=-10)
    response = await secure.get("/command", params={"command": "getDeviceList"},
                                headers=basic("viewer", "wrong"))
    assert response.status == 401


async def test_session_login_and_idle_expiry(secure: Any) -> None:
    response = await secure.post("/webservice", data=login_body("operator", "o-secret"))
    key = parse_result(await response.read(), "AuthenticateUser-response").findtext("sessionkey")
    assert response.cookies["sessionkey"]["samesite"] == "Strict"
    cookie = {"Cookie": f"sessionkey={key}"}
    await command(secure, "getDeviceList", headers=cookie)
    await asyncio.sleep(1.2)
    response = await secure.get("/command", params={"command": "getDeviceList"}, headers=cookie)
    assert response.status == 401
    assert "expired" in parse_result(await response.read(), None).findtext("description")


async def test_wrong_password_login(secure: Any) -> None:
    response = await secure.post("/webservice", data=login_body("operator", "nope"))
    assert response.status == 401
    assert parse_result(await response.read(), None).get("errorcode") == "-1001"


async def test_login_failures_are_rate_limited(make_client: Any, make_config: Any,
                                               users: list[dict[str, Any]]) -> None:
    secure = await make_client(make_config(auth={"enabled": True, "users": users,
                                                 "max_failures_per_address_user": 3}))
    for _ in range(3):
        await secure.post("/webservice", data=login_body("operator", "nope"))
    response = await secure.post("/webservice", data=login_body("operator", "o-secret"))
    assert response.status == 401
    assert "too many" in parse_result(await response.read(), None).findtext("description")


def test_refuses_to_start_unauthenticated_off_loopback(make_config: Any) -> None:
    from sense_plugin.errors import ConfigError

    with pytest.raises(ConfigError, match="only on loopback"):
        make_config(http={"host": "0.0.0.0"})
