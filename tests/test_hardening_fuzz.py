"""Fuzzing: the query-string path and the XML body path of the real server.

Every example is a real HTTP request to a real server on loopback (run in a thread with its
own event loop, so hypothesis drives it synchronously). Properties: never HTTP 500, never
result -18, always a well-formed ``<result>`` document, never a hang (socket timeout).

``SENSE_FUZZ_EXAMPLES`` sets the examples per path (CI default 2000);
``HYPOTHESIS_PROFILE=long`` runs 20000 each.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from conftest import API_DEVICES, API_SERVER_ID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from sense_plugin.api.app import create_app
from sense_plugin.config import config_from_dict
from sense_plugin.timestamps import format_timestamp

DEFAULT_EXAMPLES = 20_000 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 2000
EXAMPLES = int(os.environ.get("SENSE_FUZZ_EXAMPLES", DEFAULT_EXAMPLES))
REQUEST_TIMEOUT_S = 15.0
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
)
COMMANDS = ["exportVideo", "getExportVideoStatus", "getDeviceList", "getDivaList",
            "getServerOptions", "getServerStatus", "getRecordings", "downloadExportVideo",
            "EXPORTVIDEO", "getexportvideostatus"]
PARAMS = ["command", "exportid", "action", "status", "limit", "offset", "deviceid", "serverid",
          "starttime", "endtime", "file", "chunk_size_kb", "start_from_chunk_index", "noCache",
          "ExportId", "ACTION"]
ELEMENTS = ["export", "devices", "device", "deviceid", "serverid", "starttime", "endtime",
            "path", "bandwidth", "format", "name", "exportid", "action", "username", "password",
            "AuthenticateUser", "Export", "DeviceId", "x"]


class LiveServer:
    """The real app on 127.0.0.1 in a background thread; ``request`` is synchronous."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, name="fuzz-server", daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        assert self._ready.wait(60), "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(60)
        self._loop.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self._runner = web.AppRunner(create_app(self.config), handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def request(self, method: str, target: str, body: bytes | None = None,
                path: str = "/command") -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_S)
        try:
            headers = {"Content-Type": "text/xml"} if body is not None else {}
            conn.request(method, path + target, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory,
           api_archive: dict[str, Any]) -> Iterator[LiveServer]:
    base = tmp_path_factory.mktemp("fuzz")
    devices = [{"deviceid": str(i), "name": n, "archive_dir": str(api_archive["dirs"][n]),
                "enabled": n != "Off"} for n, i in API_DEVICES.items()]
    config = config_from_dict({
        "server": {"serverid": str(API_SERVER_ID), "name": "Fuzz", "data_dir": "data"},
        "archive": {"demo": False}, "devices": devices,
        "export": {"max_queued_jobs": 50, "max_concurrent_jobs": 1},
    }, base_dir=base)
    with LiveServer(config) as live:
        yield live


def check_answer(status: int, body: bytes) -> None:
    """The properties every answer must have."""
    assert status in (200, 401, 413), (status, body[:300])
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>'), body[:300]
    root = etree.fromstring(body)
    assert root.tag == "result"
    assert root.get("errorcode") != "-18", body[:500]
    assert b"Traceback" not in body and b"Error(" not in body


# -- strategies --------------------------------------------------------------------------------

def _timestamps(archive: dict[str, Any]) -> st.SearchStrategy[str]:
    good = st.integers(archive["start_us"] - 10**8, archive["end_us"] + 10**8).map(
        format_timestamp)
    field = st.integers(0, 99).map(lambda n: f"{n:02d}")
    odd = st.builds(lambda y, mo, d, sep, h, mi, s, frac, zone: f"{y:04d}-{mo}-{d}{sep}{h}:{mi}:{s}"
                    f"{frac}{zone}", st.integers(0, 9999), field, field, st.sampled_from(" T"),
                    field, field, field, st.sampled_from(["", ".5", ".123456", ".1234567"]),
                    st.sampled_from(["", "Z", "+00:00", "+01:00"]))
    return st.one_of(good, odd, st.text(max_size=30))


def values(archive: dict[str, Any]) -> st.SearchStrategy[str]:
    ids = st.sampled_from([str(i) for i in API_DEVICES.values()] + [str(API_SERVER_ID)])
    numbers = st.integers(-(2**70), 2**70).map(str)
    return st.one_of(
        ids, numbers, _timestamps(archive), st.sampled_from(
            ["remove", "retry", "COMPLETED,FAILED", "", " ", "..", "manifest.xml",
             "../../etc/passwd", "%00", "\x00"]),
        st.text(max_size=40), st.binary(max_size=20).map(lambda b: b.decode("latin-1")),
    )


_COMMAND_VALUES = st.one_of(st.sampled_from(COMMANDS), st.text(max_size=20))
_PARAM_NAMES = st.one_of(st.sampled_from(PARAMS), st.text(min_size=1, max_size=10))


def queries(archive: dict[str, Any]) -> st.SearchStrategy[str]:
    pairs = st.lists(st.tuples(_PARAM_NAMES, values(archive)), max_size=6)

    @st.composite
    def build(draw: st.DrawFn) -> str:
        items = [("command", draw(_COMMAND_VALUES))] if draw(st.booleans()) else []
        items = draw(st.permutations(items + draw(pairs)))
        return "&".join(f"{quote(n, safe='')}={quote(v, safe='')}" for n, v in items)
    return build()


def _leaf(archive: dict[str, Any]) -> st.SearchStrategy[etree._Element]:
    texts = values(archive)

    @st.composite
    def build(draw: st.DrawFn) -> etree._Element:
        element = etree.Element(draw(st.sampled_from(ELEMENTS)))
        text = draw(texts)
        element.text = "".join(ch for ch in text if _xml_char(ch))
        return element
    return build()


def _xml_char(ch: str) -> bool:
    code = ord(ch)
    return code in (9, 10, 13) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD \
        or code >= 0x10000


def _tree(archive: dict[str, Any]) -> st.SearchStrategy[etree._Element]:
    def extend(children: st.SearchStrategy[etree._Element]) -> st.SearchStrategy[etree._Element]:
        @st.composite
        def build(draw: st.DrawFn) -> etree._Element:
            element = etree.Element(draw(st.sampled_from(ELEMENTS)))
            for child in draw(st.lists(children, max_size=5)):
                element.append(child)
            return element
        return build()
    return st.recursive(_leaf(archive), extend, max_leaves=12)


def _valid_body(archive: dict[str, Any]) -> st.SearchStrategy[bytes]:
    start = format_timestamp(archive["start_us"])
    end = format_timestamp(archive["start_us"] + 2_000_000)
    return st.just(
        f"<export><devices><device><deviceid>{API_DEVICES['Steady']}</deviceid>"
        f"<starttime>{start}</starttime><endtime>{end}</endtime></device></devices>"
        "<bandwidth>0</bandwidth><path>fuzz</path></export>".encode())


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        match draw(st.sampled_from(["insert", "delete", "replace"])):
            case "insert":
                data[at:at] = draw(st.sampled_from(
                    [b"<", b">", b"&", b"&amp;", b"<![CDATA[", b"]]>", b"<!--", b"\x00", b"\xff",
                     b"<?pi x?>", b"<!DOCTYPE x>", b"&#0;", b"&#x10FFFF;", b"<x>", b"</x>",
                     b"xmlns:a='u'", b" "])) + draw(st.binary(max_size=4))
            case "delete":
                del data[at:at + draw(st.integers(1, 8))]
            case "replace":
                data[at:at + 1] = draw(st.binary(min_size=1, max_size=3))
    return bytes(data)


def bodies(archive: dict[str, Any]) -> st.SearchStrategy[bytes]:
    trees = _tree(archive).map(lambda e: etree.tostring(e))
    return st.one_of(trees, mutated(trees), mutated(_valid_body(archive)),
                     st.binary(max_size=200))


# -- the properties ----------------------------------------------------------------------------

def test_fuzz_query_string(server: LiveServer, api_archive: dict[str, Any]) -> None:
    @FUZZ_SETTINGS
    @given(query=queries(api_archive), method=st.sampled_from(["GET", "POST"]))
    def check(query: str, method: str) -> None:
        check_answer(*server.request(method, "?" + query))

    check()
    print(f"\nfuzz query string: {EXAMPLES} examples")


def test_fuzz_xml_body(server: LiveServer, api_archive: dict[str, Any]) -> None:
    @FUZZ_SETTINGS
    @given(body=bodies(api_archive),
           target=st.sampled_from(["?command=exportVideo", "?command=EXPORTVIDEO&x=1", ""]))
    def check(body: bytes, target: str) -> None:
        path = "/webservice" if not target else "/command"
        check_answer(*server.request("POST", target, body=body, path=path))

    check()
    print(f"\nfuzz XML body: {EXAMPLES} examples")
    status, body = server.request("GET", "?command=getExportVideoStatus")  # still answering
    check_answer(status, body)
