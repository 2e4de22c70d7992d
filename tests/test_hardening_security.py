"""Security with authentication on, beyond test_auth.py: every command, every
way of reaching another user's export, download escapes, and passwords kept out of logs."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest
from apiclient import command, export_body, parse_result, wait_export
from conftest import API_DEVICES

from sense_plugin.api.commands import all_commands
from sense_plugin.passwords import hash_password
from sense_plugin.timestamps import format_timestamp

PASSWORDS = {"alice": "alice-Pw-7f3a", "bob": "bob-Pw-91c2"}
STEADY = API_DEVICES["Steady"]


def basic(user: str, password: str | None = None) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password or PASSWORDS[user]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture(scope="module")
def users() -> list[dict[str, Any]]:
    return [{"name": n, "password_hash": hash_password(p), "permissions": ["view", "export"]}
            for n, p in PASSWORDS.items()]


@pytest.fixture
async def secure(make_client: Any, make_config: Any, users: list[dict[str, Any]]) -> Any:
    return await make_client(make_config(auth={"enabled": True, "users": users}))


BAD_CREDENTIALS = {
    "none": {},
    "unknown-session": {"Cookie": "sessionkey=forged-key"},
    "basic-garbage": {"Authorization": "Basic !!!not-base64!!!"},
    "basic-no-colon": {"Authorization": "Basic " + base64.b64encode(b"alice").decode()},
    "basic-wrong-password": basic("alice", "nope"),
    "basic-unknown-user": basic("mallory", "x"),
    "bearer": {"Authorization": "Bearer abc"},
}


@pytest.mark.parametrize("name", sorted({c.name for c in all_commands()} | {"noSuchCommand"}))
async def test_every_command_needs_authentication(secure: Any, name: str) -> None:
    for label, headers in BAD_CREDENTIALS.items():
        for method in ("GET", "POST"):
            response = await secure.request(method, "/command", params={"command": name},
                                            headers=headers, data=b"" if method == "POST" else None)
            root = parse_result(await response.read(), None)
            assert (response.status, root.get("errorcode")) == (401, "-1001"), (label, method)
            assert response.headers["WWW-Authenticate"].startswith("Basic")


async def test_other_users_exports_are_unknown_to_them(secure: Any,
                                                       api_archive: dict[str, Any]) -> None:
    start = format_timestamp(api_archive["start_us"])
    end = format_timestamp(api_archive["start_us"] + 2_000_000)
    root = await command(secure, "exportVideo", body=export_body([(STEADY, start, end)]),
                         headers=basic("alice"))
    export_id = int(root.findtext("exportid"))
    export = await wait_export_as(secure, export_id, "alice")
    name = export.findtext("devices/device/files/file/name")

    bob = basic("bob")
    listing = await command(secure, "getExportVideoStatus", headers=bob)
    assert listing.find("exports").get("count") == "0"
    attempts = [
        {"command": "getExportVideoStatus", "exportid": export_id},
        {"command": "exportVideo", "action": "remove", "exportid": export_id},
        {"command": "exportVideo", "action": "retry", "exportid": export_id},
        {"command": "downloadExportVideo", "exportid": export_id, "file": name},
        {"command": "downloadExportVideo", "exportid": export_id, "file": "manifest.xml"},
    ]
    for params in attempts:
        for method in ("GET", "POST"):
            response = await secure.request(method, "/command", params=params, headers=bob)
            root = parse_result(await response.read(), None)
            assert root.get("errorcode") == "-57", params
    body = f"<export><exportid>{export_id}</exportid><action>remove</action></export>"
    await command(secure, "exportVideo", body=body, headers=bob, expect=-57)
    again = await wait_export_as(secure, export_id, "alice")
    assert again.findtext("status") == "COMPLETED"


async def wait_export_as(client: Any, export_id: int, user: str) -> Any:
    import asyncio

    for _ in range(600):
        root = await command(client, "getExportVideoStatus", exportid=export_id,
                             headers=basic(user))
        export = root.find("exports/export")
        if export.findtext("status") in ("COMPLETED", "FAILED", "REMOVED"):
            return export
        await asyncio.sleep(0.05)
    raise AssertionError("export did not finish")


@pytest.mark.parametrize("file", ["../../data/exports.sqlite3", "/etc/passwd", "..",
                                  "../manifest.xml", "%2e%2e/x", "a/../../b", "\x00"])
async def test_downloads_cannot_escape_the_export(client: Any, api_archive: dict[str, Any],
                                                  file: str) -> None:
    start = format_timestamp(api_archive["start_us"])
    end = format_timestamp(api_archive["start_us"] + 2_000_000)
    root = await command(client, "exportVideo", body=export_body([(STEADY, start, end)]))
    export_id = int(root.findtext("exportid"))
    await wait_export(client, export_id)
    response = await client.get("/command", params={"command": "downloadExportVideo",
                                                    "exportid": export_id, "file": file})
    body = await response.read()
    root = parse_result(body, None)
    assert int(root.get("errorcode")) < 0 and root.get("errorcode") != "-18"
    assert b"SQLite" not in body and b"root:" not in body


async def test_passwords_never_reach_the_logs(secure: Any, caplog: pytest.LogCaptureFixture,
                                              api_archive: dict[str, Any]) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-Secret-Guess"
    for user, password in (("alice", PASSWORDS["alice"]), ("alice", wrong), ("bob", wrong)):
        body = (f"<AuthenticateUser><username>{user}</username><password>{password}</password>"
                "</AuthenticateUser>")
        await secure.post("/webservice", data=body.encode())
    secure.session.cookie_jar.clear()  # the session cookie would win over Basic
    await command(secure, "getDeviceList", headers=basic("alice"))
    await command(secure, "getDeviceList", headers=basic("bob", wrong), expect=-1001)
    # an unexpected failure path logs a traceback: it must not carry the request's secrets
    await secure.post("/webservice", data=b"<AuthenticateUser><username>alice</username>"
                      b"<password>" + PASSWORDS["bob"].encode() + b"</password>")
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    for secret in (*PASSWORDS.values(), wrong):
        assert secret not in logged
        assert base64.b64encode(f"alice:{secret}".encode()).decode() not in logged
