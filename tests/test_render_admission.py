"""Render admission over the real server: what cannot be rendered is refused with -22 naming
the element, and a fuzzed render that was admitted never ends in an incident (-18)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from apiclient import command, export_body, wait_export
from conftest import API_DEVICES
from lxml import etree

from sense_plugin.timestamps import format_timestamp

STEADY = API_DEVICES["Steady"]  # 64x64
US = 1_000_000
EDGES = ["0", "1e-9", "4.9e-324", "0.001", "0.02", "0.03125", "0.25", "0.5", "0.97", "1"]
WIDTHS = ["16", "17", "18", "30", "32", "64"]
RATES = ["4.9e-324", "1e-9", "0.5", "1", "12.5", "120"]


def area(rng: random.Random, tag: str) -> str:
    values = {k: rng.choice(EDGES) for k in "xywh"}
    return f"<{tag}>" + "".join(f"<{k}>{v}</{k}>" for k, v in values.items()) + f"</{tag}>"


def fuzzed_render(rng: random.Random) -> str:
    """A random ``<render>`` mixing sane and edge values of every option."""
    parts = []
    if rng.random() < 0.5:
        parts.append(area(rng, "crop"))
    for _ in range(rng.choice([0, 0, 1, 2])):
        parts.append(area(rng, "mask")[:-7] + f"<style>{rng.choice(['solid', 'pixelate'])}"
                     "</style></mask>")
    if rng.random() < 0.5:
        parts.append(f"<width>{rng.choice(WIDTHS)}</width>")
    if rng.random() < 0.4:
        parts.append(f"<fps>{rng.choice(RATES)}</fps>")
    if rng.random() < 0.5:
        parts.append("<codec>h265</codec>")
    position = rng.choice(["top-left", "top-right", "bottom-left", "bottom-right"])
    size = rng.choice(["0.01", "0.04", "0.25"])
    if rng.random() < 0.6:
        text = "W" * rng.choice([1, 40, 120, 200])
        parts.append(f"<comment><text>{text}</text><position>{position}</position>"
                     f"<size>{size}</size></comment>")
    if rng.random() < 0.6:
        parts.append(f"<timestamp><position>{position}</position><size>{size}</size>"
                     "</timestamp>")
    return "".join(parts)


async def submit(client: Any, archive: dict[str, Any], render: str) -> etree._Element:
    base = archive["start_us"]
    span = (STEADY, format_timestamp(base + 12 * US), format_timestamp(base + 13 * US))
    return await command(client, "exportVideo", body=export_body([span], render=render),
                         expect=None)


async def test_what_cannot_be_rendered_is_refused_at_admission(
        client: Any, api_archive: dict[str, Any]) -> None:
    refused = {
        "<crop><x>1</x><y>0</y><w>1e-9</w><h>1</h></crop>": "render/crop",
        "<crop><x>0</x><y>0</y><w>0.02</w><h>1</h></crop>": "render/crop",  # 1.3 of 64 px
        "<mask><x>0.5</x><y>0.5</y><w>0.01</w><h>0.2</h></mask>": "render/mask[1]",
        "<codec>h265</codec><crop><x>0</x><y>0</y><w>1</w><h>0.2</h></crop>": "render/codec",
        "<codec>h265</codec><width>16</width><crop><x>0</x><y>0</y><w>1</w><h>0.5</h></crop>":
            "render/codec",
        "<fps>4.9e-324</fps>": "render/fps",
        "<fps>0.5</fps>": "render/fps",
    }
    for render, element in refused.items():
        root = await submit(client, api_archive, render)
        assert root.get("errorcode") == "-22", (render, etree.tostring(root))
        assert element in root.findtext("description"), render
    # text wider than the picture is clipped to it
    root = await submit(client, api_archive, "<comment><text>" + "W" * 120 + "</text></comment>"
                        "<timestamp><size>0.25</size></timestamp>")
    export = await wait_export(client, int(root.findtext("exportid")))
    assert export.findtext("status") == "COMPLETED", etree.tostring(export)


async def test_admitted_fuzzed_renders_never_end_in_an_incident(
        client: Any, api_archive: dict[str, Any]) -> None:
    rng = random.Random(4711)
    admitted: dict[int, str] = {}
    refused = 0
    for _ in range(60):
        render = fuzzed_render(rng)
        root = await submit(client, api_archive, render)
        if root.get("errorcode") == "0":
            admitted[int(root.findtext("exportid"))] = render
        else:
            assert root.get("errorcode") == "-22", (render, etree.tostring(root))
            refused += 1
    assert refused >= 10 and len(admitted) >= 10, (refused, len(admitted))
    finished = await asyncio.gather(*(wait_export(client, i, timeout_s=300) for i in admitted))
    for export in finished:
        render = admitted[int(export.findtext("exportid"))]
        for device in export.iterfind("devices/device"):
            assert device.findtext("errorcode") in (None, "0"), \
                (render, etree.tostring(device).decode())
        assert export.findtext("status") == "COMPLETED", (render, etree.tostring(export))
