"""DNS rebinding over the real HTTP server with authentication off (the loopback default): a page
whose own host name now resolves to 127.0.0.1 is "same origin" to the browser, so only the host
names this server is configured to answer to keep it out."""

from __future__ import annotations

from typing import Any

from apiclient import command, export_body, parse_result
from conftest import API_DEVICES

from sense_plugin.timestamps import format_timestamp

REBOUND = "rebind.attacker.example"


def rebound_page(client: Any, name: str = REBOUND) -> dict[str, str]:
    """Every header a rebound page's fetch sends: it is same-origin to the browser."""
    origin = f"http://{name}:{client.port}"
    return {"Host": f"{name}:{client.port}", "Origin": origin, "Sec-Fetch-Site": "same-origin",
            "X-Requested-With": "XMLHttpRequest", "Content-Type": "text/plain"}


def export_of(archive: dict[str, Any]) -> str:
    start = format_timestamp(archive["start_us"])
    return export_body([(API_DEVICES["Steady"], start,
                         format_timestamp(archive["start_us"] + 2_000_000))])


async def test_a_rebound_page_can_neither_change_nor_read(client: Any,
                                                          api_archive: dict[str, Any]) -> None:
    export_id = int((await command(client, "exportVideo", body=export_of(api_archive)))
                    .findtext("exportid"))
    page = rebound_page(client)
    response = await client.post("/command", params={"command": "exportVideo"},
                                 data=export_of(api_archive), headers=page)
    root = parse_result(await response.read(), None)
    assert (response.status, root.get("errorcode")) == (421, "-1002")
    assert "does not answer to the host name rebind.attacker.example " in \
        root.findtext("description")
    for query in ({"command": "exportVideo", "action": "remove", "exportid": str(export_id)},
                  {"command": "getExportVideoStatus"}, {"command": "getDeviceList"}):
        response = await client.get("/command", params=query, headers=page)
        assert response.status == 421, query
        assert b"exportid" not in await response.read()
    for path in ("/web/", "/metrics", "/info"):
        assert (await client.get(path, headers=page)).status == 421, path
    root = await command(client, "getExportVideoStatus", exportid=export_id)
    assert root.findtext("exports/export/status") != "REMOVED"
    assert root.find("exports").get("count") == "1"


async def test_configured_names_and_addresses_are_served(make_client: Any, make_config: Any,
                                                         api_archive: dict[str, Any]) -> None:
    client = await make_client(make_config(http={"allowed_hosts": ["cams.example.org"]}))
    for name in ("cams.example.org", "CAMS.example.org.", "localhost", "127.0.0.1", "[::1]"):
        headers = rebound_page(client, name)
        root = await command(client, "exportVideo", body=export_of(api_archive), headers=headers)
        await command(client, "exportVideo", action="remove", exportid=root.findtext("exportid"),
                      headers=headers)


async def test_origin_is_compared_with_configured_origins_not_with_host(
        client: Any, api_archive: dict[str, Any]) -> None:
    # Host names this server, but the page is of another origin that sent no other proof.
    headers = {"Host": f"127.0.0.1:{client.port}", "Origin": f"http://{REBOUND}:{client.port}",
               "Content-Type": "text/plain"}
    root = await command(client, "exportVideo", body=export_of(api_archive), headers=headers,
                         expect=-1002)
    assert "another origin" in root.findtext("description")
    headers["Origin"] = f"http://localhost:{client.port}"
    await command(client, "exportVideo", body=export_of(api_archive), headers=headers)
