"""Completion callbacks over the real app, to a real local HTTP receiver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.server
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from apiclient import command, export_body, wait_export
from conftest import API_DEVICES
from lxml import etree

from sense_plugin.config import config_from_dict
from sense_plugin.errors import ConfigError
from sense_plugin.testing.serverprocess import ServerProcess, free_port
from sense_plugin.timestamps import format_timestamp

STEADY = API_DEVICES["Steady"]
SECRET = "hook-secret"


@dataclass
class Receiver:
    """A local HTTP server that records every POST and answers ``status`` (or hangs)."""

    port: int = field(default_factory=free_port)
    status: int = 200
    hang: bool = False
    seen: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    runner: web.AppRunner | None = None
    released: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append((self.status, dict(request.headers), body))
        if self.hang:
            await self.released.wait()
        return web.Response(status=self.status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        self.released.set()
        if self.runner is not None:
            await self.runner.cleanup()

    def taken(self) -> list[tuple[dict[str, str], bytes]]:
        """The deliveries answered 2xx, in the order they came."""
        return [(h, b) for s, h, b in self.seen if 200 <= s < 300]

    async def wait_taken(self, count: int, timeout_s: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(self.taken()) < count:
            assert loop.time() < deadline, self.seen
            await asyncio.sleep(0.05)


@pytest.fixture
async def receiver() -> Any:
    hook = Receiver()
    await hook.start()
    yield hook
    await hook.stop()


def hooked(make_config: Any, receiver: Receiver) -> Any:
    """The test server's configuration with one webhook to ``receiver`` for every event."""
    return config_from_dict(
        {**base_tables(make_config), "webhooks": [{"url": receiver.url, "secret": SECRET}]},
        base_dir=make_config().server.data_dir.parent)


def base_tables(make_config: Any) -> dict[str, Any]:
    config = make_config()
    return {"server": {"serverid": str(config.server.server_id), "data_dir": "data"},
            "archive": {"demo": False},
            "devices": [{"deviceid": str(d.device_id), "name": d.name,
                         "archive_dir": str(d.archive_dir), "enabled": d.enabled}
                        for d in config.devices]}


def check_signed(headers: dict[str, str], body: bytes, secret: str = SECRET) -> None:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Sense-Signature"] == expected
    assert headers["X-Sense-Delivery"]


async def new_export(client: Any, archive: dict[str, Any], **fields: Any) -> int:
    base = archive["start_us"]
    body = export_body([(STEADY, format_timestamp(base + 5_000_000),
                         format_timestamp(base + 8_000_000))], **fields)
    return int((await command(client, "exportVideo", body=body)).findtext("exportid"))


async def test_signed_callbacks_in_order_after_answers_of_500(
        make_client: Any, make_config: Any, receiver: Receiver,
        api_archive: dict[str, Any]) -> None:
    receiver.status = 500
    client = await make_client(hooked(make_config, receiver))
    export_id = await new_export(client, api_archive)
    await wait_export(client, export_id)
    await command(client, "exportVideo", action="hold", exportid=export_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while len(receiver.seen) < 3:  # the first event, refused three times (1 s, 2 s apart)
        assert loop.time() < deadline
        await asyncio.sleep(0.05)
    receiver.status = 200
    await receiver.wait_taken(2)
    events = [h["X-Sense-Event"] for h, _ in receiver.taken()]
    assert events == ["completed", "held"]
    refused = {h["X-Sense-Delivery"] for s, h, _ in receiver.seen if s == 500}
    assert refused == {receiver.taken()[0][0]["X-Sense-Delivery"]}  # retried, not re-made
    assert all(h["X-Sense-Event"] == "completed" for s, h, _ in receiver.seen if s == 500)
    for headers, body in receiver.taken():
        check_signed(headers, body)
        document = etree.fromstring(body)
        assert document.findtext("exports/export/exportid") == str(export_id)
    assert etree.fromstring(receiver.taken()[1][1]).findtext("exports/export/hold") == "true"
    metrics = await (await client.get("/metrics")).text()
    assert "sense_callback_deliveries_total 2.0" in metrics
    assert "sense_callback_failures_total 3.0" in metrics
    assert "sense_callback_pending 0.0" in metrics


async def test_deliveries_survive_a_restart(
        make_client: Any, make_config: Any, api_archive: dict[str, Any]) -> None:
    receiver = Receiver()  # not listening yet: every attempt fails
    config = hooked(make_config, receiver)
    client = await make_client(config)
    export_id = await new_export(client, api_archive)
    await wait_export(client, export_id)
    metrics = await (await client.get("/metrics")).text()
    assert "sense_callback_pending 1.0" in metrics
    await client.close()
    await receiver.start()
    try:
        again = await make_client(config)
        await receiver.wait_taken(1)
        headers, body = receiver.taken()[0]
        check_signed(headers, body)
        assert headers["X-Sense-Event"] == "completed"
        assert etree.fromstring(body).findtext("exports/export/status") == "COMPLETED"
        await command(again, "getExportVideoStatus", exportid=export_id)
    finally:
        await receiver.stop()


async def test_a_hanging_receiver_holds_up_nothing_else(
        make_client: Any, make_config: Any, receiver: Receiver,
        api_archive: dict[str, Any]) -> None:
    receiver.hang = True
    client = await make_client(hooked(make_config, receiver))
    first = await new_export(client, api_archive)
    await wait_export(client, first)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while not receiver.seen:
        assert loop.time() < deadline
        await asyncio.sleep(0.05)
    # the receiver holds the first delivery open: exports, status and removal go on
    second = await new_export(client, api_archive)
    assert (await wait_export(client, second)).findtext("status") == "COMPLETED"
    await command(client, "exportVideo", action="remove", exportid=second)
    assert len(receiver.seen) == 1


async def test_an_export_names_its_own_callback_on_an_allowed_host(
        make_client: Any, make_config: Any, receiver: Receiver,
        api_archive: dict[str, Any]) -> None:
    client = await make_client(make_config(export={"callback_hosts": ["127.0.0.1"],
                                                   "callback_secret": "per-export"}))
    export_id = await new_export(client, api_archive, callback=receiver.url)
    await wait_export(client, export_id)
    await receiver.wait_taken(1)
    headers, body = receiver.taken()[0]
    check_signed(headers, body, "per-export")
    refused = await command(client, "exportVideo", expect=-22, body=export_body(
        [(STEADY, format_timestamp(api_archive["start_us"]),
          format_timestamp(api_archive["start_us"] + 1_000_000))],
        callback="http://elsewhere.example/hook"))
    assert "elsewhere.example" in refused.findtext("description")


def test_an_unknown_webhook_event_stops_the_server(make_config: Any) -> None:
    tables = base_tables(make_config)
    with pytest.raises(ConfigError, match="unknown event 'finished'"):
        config_from_dict({**tables, "webhooks": [
            {"url": "http://127.0.0.1:9/hook", "secret": "x", "events": ["finished"]}]},
            base_dir=make_config().server.data_dir.parent)


class _Hook(http.server.BaseHTTPRequestHandler):
    """Records every POST of the real server; answers 200."""

    seen: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_a_real_server_delivers_after_it_was_stopped_with_the_receiver_down(
        api_archive: dict[str, Any], tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "server.toml"
    config.write_text("\n".join([
        "[server]", 'serverid = "77"', f'data_dir = "{tmp_path / "data"}"',
        "[archive]", "demo = false",
        "[[devices]]", f'deviceid = "{STEADY}"', 'name = "Steady"',
        f'archive_dir = "{api_archive["dirs"]["Steady"]}"',
        "[[webhooks]]", f'url = "http://127.0.0.1:{port}/hook"', f'secret = "{SECRET}"',
        'events = ["completed"]']) + "\n")
    server = ServerProcess(config, tmp_path / "server.log")
    server.start()
    try:
        base = api_archive["start_us"]
        body = export_body([(STEADY, format_timestamp(base + 5_000_000),
                             format_timestamp(base + 8_000_000))]).encode()
        export_id = server.command("exportVideo", body).findtext("exportid")
        deadline = time.monotonic() + 30
        while server.command(f"getExportVideoStatus&exportid={export_id}").findtext(
                "exports/export/status") != "COMPLETED":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert server.stop() == 0  # the receiver has not answered yet: nothing delivered
        _Hook.seen = []
        receiver = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Hook)
        threading.Thread(target=receiver.serve_forever, daemon=True).start()
        try:
            server.start()
            deadline = time.monotonic() + 30
            while not _Hook.seen:
                assert time.monotonic() < deadline, server.log_path.read_text()[-2000:]
                time.sleep(0.05)
        finally:
            receiver.shutdown()
            receiver.server_close()
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()
    headers, sent = _Hook.seen[0]
    check_signed(headers, sent)
    assert headers["X-Sense-Event"] == "completed"
    assert etree.fromstring(sent).findtext("exports/export/exportid") == export_id
