"""CSRF over the real HTTP server with authentication on: requests that change state
and carry a browser's cookie must prove they come from this server's own page."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from apiclient import command, export_body, parse_result
from conftest import API_DEVICES

from sense_plugin.passwords import hash_password
from sense_plugin.timestamps import format_timestamp

PASSWORD = "alice-Pw-7f3a"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()}
LOGIN = (f"<AuthenticateUser><username>alice</username><password>{PASSWORD}</password>"
         "</AuthenticateUser>").encode()
EVIL = "http://evil.example"
#: Headers a browser adds when a page of another origin (or site) starts the request.
FORGED = {
    "cross-origin-form": {"Origin": EVIL, "Content-Type": "text/plain"},
    "cross-origin-null": {"Origin": "null", "Content-Type": "text/plain"},
    "same-site-img": {"Sec-Fetch-Site": "same-site"},
    "cross-site-img": {"Sec-Fetch-Site": "cross-site"},
    "other-port": {"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"},
    "other-port-origin-only": {"Origin": "http://127.0.0.1:1", "Content-Type": "text/plain"},
}


@pytest.fixture
async def secure(make_client: Any, make_config: Any) -> Any:
    users = [{"name": "alice", "password_hash": hash_password(PASSWORD),
              "permissions": ["view", "export"]}]
    return await make_client(make_config(auth={"enabled": True, "users": users}))


async def session_key(client: Any) -> dict[str, str]:
    response = await client.post("/webservice", data=LOGIN)
    key = parse_result(await response.read(), "AuthenticateUser-response").findtext("sessionkey")
    client.session.cookie_jar.clear()  # each request below says which cookie it sends
    return {"Cookie": f"sessionkey={key}"}


def own_origin(client: Any) -> str:
    return f"http://127.0.0.1:{client.port}"


async def one_export(client: Any, archive: dict[str, Any], cookie: dict[str, str]) -> int:
    start = format_timestamp(archive["start_us"])
    end = format_timestamp(archive["start_us"] + 2_000_000)
    root = await command(client, "exportVideo", body=export_body([(API_DEVICES["Steady"], start,
                                                                    end)]), headers=cookie)
    return int(root.findtext("exportid"))


async def wait_status(client: Any, export_id: int, cookie: dict[str, str]) -> str:
    for _ in range(600):
        root = await command(client, "getExportVideoStatus", exportid=export_id, headers=cookie)
        status = root.findtext("exports/export/status")
        if status in ("COMPLETED", "FAILED", "REMOVED"):
            return str(status)
        await asyncio.sleep(0.05)
    raise AssertionError("export did not finish")


async def count_exports(client: Any, cookie: dict[str, str]) -> int:
    root = await command(client, "getExportVideoStatus", headers=cookie)
    return int(root.find("exports").get("count"))


@pytest.mark.parametrize("label", sorted(FORGED))
async def test_forged_requests_change_nothing(secure: Any, api_archive: dict[str, Any],
                                              label: str) -> None:
    cookie = await session_key(secure)
    export_id = await one_export(secure, api_archive, cookie)
    forged = {**cookie, **FORGED[label]}
    start = format_timestamp(api_archive["start_us"])
    end = format_timestamp(api_archive["start_us"] + 2_000_000)
    body = export_body([(API_DEVICES["Steady"], start, end)])
    create = await command(secure, "exportVideo", body=body, headers=forged, expect=-1002)
    text = create.findtext("description")
    assert "exportVideo refused" in text and ("Origin" in text or "Sec-Fetch-Site" in text)
    for params in ({"action": "remove", "exportid": export_id},
                   {"action": "retry", "exportid": export_id}):
        for method in ("GET", "POST"):
            await command(secure, "exportVideo", method=method, headers=forged, expect=-1002,
                          **params)
    removal = f"<export><exportid>{export_id}</exportid><action>remove</action></export>"
    await command(secure, "exportVideo", body=removal, headers=forged, expect=-1002)
    await command(secure, "logout", headers=forged, expect=-1002)
    assert await count_exports(secure, cookie) == 1
    assert await wait_status(secure, export_id, cookie) == "COMPLETED"
    # reads stay possible (a foreign page cannot read the answer anyway)
    await command(secure, "getExportVideoStatus", headers=forged)


@pytest.mark.parametrize("label", sorted(FORGED))
async def test_no_login_csrf(secure: Any, label: str) -> None:
    response = await secure.post("/webservice", data=LOGIN, headers=FORGED[label])
    root = parse_result(await response.read(), None)
    assert root.get("errorcode") == "-1002" and "login refused" in root.findtext("description")
    assert "sessionkey" not in response.cookies


async def test_same_origin_and_non_browser_clients_work(secure: Any,
                                                        api_archive: dict[str, Any]) -> None:
    cookie = await session_key(secure)
    proofs = {
        "page": {"X-Requested-With": "XMLHttpRequest", "Origin": EVIL},  # e.g. behind a proxy
        "same-origin": {"Origin": own_origin(secure), "Sec-Fetch-Site": "same-origin"},
        "typed-url": {"Sec-Fetch-Site": "none"},
        "no-browser-headers": {},  # VDG Sense, curl, scripts
    }
    for label, headers in proofs.items():
        export_id = await one_export(secure, api_archive, {**cookie, **headers})
        root = await command(secure, "exportVideo", action="remove", exportid=export_id,
                             headers={**cookie, **headers})
        assert root.findtext("status") == "REMOVED", label
    # an XML body proves it too: another origin cannot send text/xml without a preflight
    start = format_timestamp(api_archive["start_us"])
    end = format_timestamp(api_archive["start_us"] + 2_000_000)
    response = await secure.post(
        "/command", params={"command": "exportVideo"},
        data=export_body([(API_DEVICES["Steady"], start, end)]),
        headers={**cookie, "Origin": EVIL, "Content-Type": "text/xml; charset=utf-8"})
    assert parse_result(await response.read(), "exportVideo").get("errorcode") == "0"
    # HTTP Basic clients, and logins from scripts, are unchanged
    await command(secure, "exportVideo", action="remove", exportid=1, headers=BASIC)
    response = await secure.post("/webservice", data=LOGIN)
    assert parse_result(await response.read(), "AuthenticateUser-response").findtext("sessionkey")

