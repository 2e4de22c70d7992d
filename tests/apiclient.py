"""Test helpers for talking to the real server: send a command, check the XML against its XSD."""

from __future__ import annotations

import asyncio
from functools import cache
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from lxml import etree

SCHEMAS = Path(__file__).resolve().parents[1] / "sense_plugin" / "schemas"


@cache
def schema(name: str) -> etree.XMLSchema:
    """The compiled XSD ``sense_plugin/schemas/<name>.xsd`` (name matched case-insensitively)."""
    files = {p.stem.lower(): p for p in SCHEMAS.glob("*.xsd")}
    return etree.XMLSchema(etree.parse(str(files[name.lower()])))


def parse_result(body: bytes, schema_name: str | None) -> etree._Element:
    """Parse a response document; validate it against the error schema or ``schema_name``."""
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>'), body[:80]
    root = etree.fromstring(body)
    assert root.tag == "result"
    name = "error" if int(root.get("errorcode")) != 0 else schema_name
    if name is not None:
        checker = schema(name)
        assert checker.validate(root), f"{name}.xsd: {checker.error_log}\n{body.decode()}"
    assert b"Traceback" not in body and b"Error(" not in body
    return root


async def command(client: TestClient, name: str, *, body: bytes | str | None = None,
                  expect: int | None = 0, method: str | None = None,
                  headers: dict[str, str] | None = None, **params: Any) -> etree._Element:
    """Send ``/command?command=name`` and return the validated ``<result>`` element.

    ``expect`` is the errorcode the test requires (None: any).
    """
    query = {"command": name, **{k: str(v) for k, v in params.items()}}
    data = body.encode() if isinstance(body, str) else body
    verb = method or ("POST" if data is not None else "GET")
    response = await client.request(verb, "/command", params=query, data=data, headers=headers)
    assert response.headers["Content-Type"] == "text/xml; charset=utf-8"
    root = parse_result(await response.read(), name)
    if expect is not None:
        assert int(root.get("errorcode")) == expect, etree.tostring(root).decode()
    return root


def export_body(devices: list[tuple[int, str, str]], **fields: Any) -> str:
    """An exportVideo request document; validated against ``export-request.xsd``."""
    items = "".join(
        f"<device><deviceid>{d}</deviceid><starttime>{s}</starttime><endtime>{e}</endtime></device>"
        for d, s, e in devices
    )
    extra = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
    text = f"<export><devices>{items}</devices>{extra}</export>"
    assert schema("export-request").validate(etree.fromstring(text))
    return text


async def wait_export(
    client: TestClient, export_id: int, timeout_s: float = 30.0,
    until: tuple[str, ...] = ("COMPLETED", "FAILED", "REMOVED"),
) -> etree._Element:
    """Poll getExportVideoStatus until the export reaches one of ``until``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        root = await command(client, "getExportVideoStatus", exportid=export_id)
        export = root.find("exports/export")
        if export.findtext("status") in until:
            return export
        assert asyncio.get_running_loop().time() < deadline, etree.tostring(export).decode()
        await asyncio.sleep(0.05)
