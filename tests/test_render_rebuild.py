"""Render options survive a lost job store (written into the signed manifest and read back),
and a render width wider than the recording is refused at admission (docs/rendering.rst)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from apiclient import command, export_body, schema, wait_export
from conftest import API_DEVICES
from lxml import etree

from sense_plugin.export.rebuild import export_from_manifest
from sense_plugin.export.renderxml import parse_render
from sense_plugin.timestamps import format_timestamp

STEADY = API_DEVICES["Steady"]
RENDER = ("<render><timestamp><format>%H:%M:%S.%f </format><position>top-right</position>"
          "<color>#10FF20</color><size>0.05</size><timezone>Europe/Berlin</timezone>"
          "</timestamp><comment><text>Case 4711</text><position>bottom-right</position>"
          "</comment><mask><x>0.1</x><y>0.2</y><w>0.25</w><h>0.3</h><style>pixelate</style>"
          "</mask><mask><x>0.6</x><y>0.6</y><w>0.2</w><h>0.1</h></mask><crop><x>0.05</x>"
          "<y>0.1</y><w>0.9</w><h>0.8</h></crop><width>48</width><quality>low</quality>"
          "</render>")


def drop_store(data_dir: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (data_dir / ("exports.sqlite3" + suffix)).unlink(missing_ok=True)


def export_dir(config: Any, export: etree._Element) -> Path:
    return config.server.export_roots[0] / (export.findtext("path") or "unnamed") / \
        (export.findtext("exportid") or "")


async def test_render_options_are_in_the_manifest_and_survive_a_lost_store(
        make_client: Any, make_config: Any, api_archive: dict[str, Any]) -> None:
    config = make_config()
    client = await make_client(config)
    base = api_archive["start_us"]
    devices = [(STEADY, format_timestamp(base + 2_000_000), format_timestamp(base + 3_000_000))]
    root = await command(client, "exportVideo", body=export_body(devices, path="case")
                         .replace("</export>", RENDER + "</export>"))
    export = await wait_export(client, int(root.findtext("exportid")))
    assert export.findtext("status") == "COMPLETED", etree.tostring(export)
    subtitled = await command(client, "exportVideo", body=export_body(
        devices, path="subs", timestamps="subtitle"))
    subs = await wait_export(client, int(subtitled.findtext("exportid")))
    wanted = parse_render(etree.fromstring(RENDER))
    manifest = etree.parse(str(export_dir(config, export) / "manifest.xml")).getroot()
    assert schema("manifest").validate(manifest), schema("manifest").error_log
    assert parse_render(manifest.find("render")) == wanted
    assert export_from_manifest(export_dir(config, export), 24).options.render == wanted
    assert export_from_manifest(export_dir(config, subs), 24).options.timestamps == "subtitle"

    await client.close()
    drop_store(config.server.data_dir)
    client = await make_client(config)  # rebuilt from the manifests
    await command(client, "exportVideo", action="remove", exportid=export.findtext("exportid"))
    retried = await command(client, "exportVideo", action="retry",
                            exportid=export.findtext("exportid"))
    again = await wait_export(client, int(retried.findtext("exportid")))
    assert again.findtext("status") == "COMPLETED", etree.tostring(again)
    manifest = etree.parse(str(export_dir(config, again) / "manifest.xml")).getroot()
    assert parse_render(manifest.find("render")) == wanted  # the retry rendered the same way
    assert "rendered" in (manifest.findtext("rendering/method") or "")


def test_an_older_manifest_without_render_still_loads(tmp_path: Path) -> None:
    directory = tmp_path / "7"
    directory.mkdir()
    (directory / "manifest.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<manifest version="1"><exportid>7</exportid>'
        "<owner>-</owner><created>2026-01-01 10:00:00.000</created><finished>2026-01-01 "
        "10:00:05.000</finished><format>mp4</format><name/><path/><status>REMOVED</status>"
        "<rendering><method>rendered: decoded, filtered and re-encoded; not the original "
        'stream</method><option name="width">320</option></rendering><devices><device>'
        f"<serverid>1</serverid><deviceid>{STEADY}</deviceid><name>Steady</name><starttime>"
        "2026-01-01 09:00:00.000</starttime><endtime>2026-01-01 09:00:05.000</endtime>"
        "<status>REMOVED</status></device></devices></manifest>")
    assert schema("manifest").validate(etree.parse(str(directory / "manifest.xml")))
    options = export_from_manifest(directory, 24).options
    assert options.render is None and options.timestamps == "none"


async def test_a_render_width_wider_than_the_recording_is_refused_at_admission(
        client: Any, api_archive: dict[str, Any]) -> None:
    base = api_archive["start_us"]
    devices = [(STEADY, format_timestamp(base + 2_000_000), format_timestamp(base + 3_000_000))]
    wide = export_body(devices).replace("</export>", "<render><width>640</width></render>"
                                        "</export>")
    root = await command(client, "exportVideo", body=wide, expect=-22)
    description = root.findtext("description") or ""
    assert "render/width 640" in description and str(STEADY) in description
    assert "64x64" in description
    cropped = export_body(devices).replace("</export>", "<render><crop><x>0</x><y>0</y><w>0.5"
                                           "</w><h>0.5</h></crop><width>40</width></render>"
                                           "</export>")
    root = await command(client, "exportVideo", body=cropped, expect=-22)
    assert "render/width 40" in (root.findtext("description") or "")
    listing = await command(client, "getExportVideoStatus")
    assert listing.find("exports").get("count") == "0"  # nothing queued
    at = format_timestamp(base + 2_000_000)
    snapshot = (f"<export><devices><device><deviceid>{STEADY}</deviceid><starttime>{at}"
                "</starttime></device></devices><output>snapshot</output><render><width>4000"
                "</width></render></export>")
    await command(client, "exportVideo", body=snapshot, expect=-22)
    fits = export_body(devices).replace("</export>", "<render><width>64</width></render>"
                                        "</export>")
    await command(client, "exportVideo", body=fits)
