"""PDF snapshot reports over the real app: pdftotext finds what the page says."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from apiclient import command, export_body, wait_export
from conftest import API_DEVICES

from sense_plugin.timestamps import format_timestamp

STEADY, MATROSKA = API_DEVICES["Steady"], API_DEVICES["Matroska"]
pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                reason="needs pdftotext (Debian package poppler-utils)")


def pdf_text(path: Path, *layout: str) -> str:
    return subprocess.run(["pdftotext", *layout, str(path), "-"], capture_output=True,
                          check=True, text=True).stdout


async def test_one_report_per_device_with_frame_camera_time_comment_and_export_id(
        client: Any, api_archive: dict[str, Any], make_config: Any, tmp_path: Path) -> None:
    instant = api_archive["start_us"] + 12_345_000
    devices = [(d, format_timestamp(instant), format_timestamp(instant + 1_000_000))
               for d in (STEADY, MATROSKA)]
    render = ("<timestamp><position>bottom-right</position></timestamp>"
              "<comment><text>Case 117</text></comment>")
    body = export_body(devices, output="snapshot", format="pdf", render=render)
    export_id = int((await command(client, "exportVideo", body=body)).findtext("exportid"))
    export = await wait_export(client, export_id)
    assert export.findtext("status") == "COMPLETED"
    files = list(export.iterfind("devices/device/files/file"))
    assert len(files) == 2
    for listed, camera in zip(files, ("Steady", "Matroska"), strict=True):
        name = listed.findtext("name")
        assert name.endswith(".pdf") and listed.findtext("mimetype") == "application/pdf"
        response = await client.get("/command", params={
            "command": "downloadExportVideo", "exportid": str(export_id), "file": name})
        assert response.headers["Content-Type"] == "application/pdf"
        path = tmp_path / name
        path.write_bytes(await response.read())
        text = pdf_text(path)
        shown = listed.findtext("starttime")  # the frame's own archive time
        assert f"Camera: {camera}" in text
        assert "Case 117" in text
        assert f"Export: {export_id}" in text
        assert shown[:19] in text  # timestamp overlay format: seconds, UTC
        info = subprocess.run(["pdfinfo", str(path)], capture_output=True, check=True,
                              text=True).stdout
        assert re.search(r"^Pages:\s+1$", info, re.MULTILINE)
        # the text block is in the bottom right corner: below the frame, right-aligned
        boxes = subprocess.run(["pdftotext", "-bbox", str(path), "-"], capture_output=True,
                               check=True, text=True).stdout
        assert 'xMin="' in boxes
        page_w, page_h, word = _first_word_box(boxes, "Export:")
        assert word[0] > page_w / 2 and word[1] > page_h / 2  # y grows downwards here
        images = subprocess.run(["pdfimages", "-list", str(path)], capture_output=True,
                                check=True, text=True).stdout
        assert " jpeg " in images  # the frame itself, embedded as a JPEG


def _first_word_box(xhtml: str, word: str) -> tuple[float, float, tuple[float, float]]:
    from lxml import etree

    root = etree.fromstring(xhtml.encode(), etree.XMLParser(recover=True))
    page = next(root.iter("{*}page"))
    for element in page.iter("{*}word"):
        if element.text == word:
            return (float(page.get("width")), float(page.get("height")),
                    (float(element.get("xMin")), float(element.get("yMin"))))
    raise AssertionError(f"{word} not on the page")


async def test_pdf_is_only_for_snapshots(client: Any, api_archive: dict[str, Any]) -> None:
    start = api_archive["start_us"]
    body = export_body([(STEADY, format_timestamp(start), format_timestamp(start + 2_000_000))],
                       format="pdf")
    refused = await command(client, "exportVideo", body=body, expect=-22)
    assert "pdf" in refused.findtext("description")
