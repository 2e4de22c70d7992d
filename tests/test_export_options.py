"""The export kind and options of docs/exports.rst, docs/rendering.rst: parsing, the store, status
and manifest fields."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from apiclient import command, export_body, schema, wait_export
from conftest import API_DEVICES
from lxml import etree

from sense_plugin.api.commands.exports import parse_export
from sense_plugin.errors import SenseError
from sense_plugin.export.model import Export, Job, Status
from sense_plugin.export.rebuild import export_from_manifest
from sense_plugin.export.store import ExportStore
from sense_plugin.media.exportoptions import ExportOptions
from sense_plugin.media.renderoptions import Comment, Mask, Rect, RenderOptions, Timestamp
from sense_plugin.timestamps import format_timestamp, now_us

STEADY = API_DEVICES["Steady"]
FULL_RENDER = RenderOptions(
    timestamp=Timestamp(position="top-right", color=(1, 2, 3), size=0.05, fmt="%H:%M",
                        timezone="Europe/Berlin"),
    comment=Comment(text="Case 4711", position="bottom-right", color=(9, 8, 7), size=0.03),
    masks=(Mask(Rect(0.1, 0.2, 0.3, 0.4), "pixelate"), Mask(Rect(0, 0, 0.5, 0.5))),
    crop=Rect(0.0, 0.1, 0.9, 0.8), width=640, fps=5.0, codec="h265", quality="high",
)


def test_options_round_trip_through_json_with_every_render_field() -> None:
    options = ExportOptions(mode="live", output="stream", audio=False, maxfilesize_mb=7,
                            keepalive_s=30, render=FULL_RENDER, timestamps="subtitle")
    assert ExportOptions.loads(options.dumps()) == options
    assert ExportOptions.from_json(options.to_json()) == options
    assert ExportOptions.loads(None) == ExportOptions() == ExportOptions.loads("{}")
    assert options.to_json()["render"]["codec"] == "h265"
    assert options.describe() == [("mode", "live"), ("output", "stream"), ("maxfilesize", "7"),
                                  ("audio", "false"), ("keepalive", "30")]


def body(devices: str, **fields: str) -> str:
    extra = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
    text = f"<export><devices>{devices}</devices>{extra}</export>"
    return text


def dev(start: str | None = None, end: str | None = None, device: int = STEADY) -> str:
    parts = f"<deviceid>{device}</deviceid>"
    if start is not None:
        parts += f"<starttime>{start}</starttime>"
    if end is not None:
        parts += f"<endtime>{end}</endtime>"
    return f"<device>{parts}</device>"


def ago(seconds: float) -> str:
    return format_timestamp(now_us() - int(seconds * 1e6))


BAD = [
    # (fields of <export>, device range, code, word the description must name)
    ({"output": "snapshot"}, (None, "past"), -10, "starttime"),
    ({"maxfilesize": "-1"}, ("a", "b"), -22, "maxfilesize"),
    ({"maxfilesize": "ten"}, ("a", "b"), -22, "maxfilesize"),
    ({"maxfilesize": ""}, ("a", "b"), -23, "maxfilesize"),
    ({"keepalive": "-5"}, ("a", "b"), -22, "keepalive"),
    ({"keepalive": "1.5"}, ("a", "b"), -22, "keepalive"),
    ({"mode": "replay"}, ("a", "b"), -22, "mode"),
    ({"output": "movie"}, ("a", "b"), -22, "output"),
    ({"output": "snapshot", "format": "mkv"}, ("a", None), -22, "format"),
    ({"format": "jpg"}, ("a", "b"), -22, "format"),
    ({"output": "snapshot", "maxfilesize": "5"}, ("a", None), -22, "maxfilesize"),
    ({"audio": "yes"}, ("a", "b"), -22, "audio"),
    ({"audio": ""}, ("a", "b"), -23, "audio"),
    ({"timestamps": "burnt"}, ("a", "b"), -22, "timestamps"),
    ({"timestamps": "subtitle", "format": "ts"}, ("a", "b"), -22, "ts"),
    ({"render": "<width>9</width>"}, ("a", "b"), -22, "render/width"),
    ({"render": "<timestamp><color>red</color></timestamp>"}, ("a", "b"), -22, "color"),
    ({"mode": "live"}, ("a", "future"), -22, "live"),          # Steady is not recorded live
    ({}, ("a", "future"), -22, "future"),
    ({"output": "snapshot"}, ("future", None), -22, "future"),
]


@pytest.mark.parametrize(("fields", "times", "code", "word"), BAD)
async def test_bad_options_are_coded_errors_naming_the_element_and_queue_nothing(
        client: Any, api_archive: dict[str, Any], fields: dict[str, str],
        times: tuple[str | None, str | None], code: int, word: str) -> None:
    base = api_archive["start_us"]
    values = {"a": format_timestamp(base + 1_000_000), "b": format_timestamp(base + 5_000_000),
              "past": format_timestamp(base + 5_000_000),
              "future": format_timestamp(now_us() + 60_000_000), None: None}
    text = body(dev(values[times[0]], values[times[1]]), **fields)
    root = await command(client, "exportVideo", body=text, expect=code)
    assert word in (root.findtext("description") or ""), etree.tostring(root)
    listing = await command(client, "getExportVideoStatus")
    assert listing.find("exports").get("count") == "0"


def test_live_and_snapshot_ranges(make_config: Any) -> None:
    config = make_config(export={"max_live_s": 600, "live_keepalive_s": 120})
    recorded = frozenset({STEADY})

    def parse(text: str) -> Any:
        return parse_export(etree.fromstring(text), config, recorded)

    live = parse(body(dev(), mode="LIVE"))
    device = live.devices[0]
    assert live.options.live and live.options.keepalive_s == 120
    assert abs(device.start_us - now_us()) < 5_000_000
    assert device.end_us - device.start_us == pytest.approx(600e6, abs=5e6)
    live = parse(body(dev(ago(30), format_timestamp(now_us() + 60_000_000)), mode="live",
                      keepalive="0", audio="FALSE"))
    assert live.options.keepalive_s == 0 and not live.options.audio
    with pytest.raises(SenseError) as err:
        parse(body(dev(end=format_timestamp(now_us() + 700_000_000)), mode="live"))
    assert int(err.value.code) == -22 and "max_live_s" in err.value.description
    # a live export whose endtime is already past is an ordinary archive export
    past = parse(body(dev(ago(60), ago(30)), mode="live"))
    assert past.options.mode == "archive" and past.options.keepalive_s == 0
    snap = parse(body(dev(ago(100), "garbage"), output="snapshot", format="PNG"))
    assert snap.fmt == "png" and snap.options.snapshot
    assert snap.devices[0].start_us == snap.devices[0].end_us
    newest = parse(body(dev(), output="snapshot", mode="live"))
    assert newest.fmt == "jpg" and abs(newest.devices[0].start_us - now_us()) < 5_000_000
    plain = parse(body(dev(ago(60), ago(30)), audio="0", maxfilesize="3", render="<width>640"
                       "</width>", timestamps="subtitle"))
    assert plain.options == ExportOptions(audio=False, maxfilesize_mb=3,
                                          render=RenderOptions(width=640), timestamps="subtitle")


def _export(options: ExportOptions, directory: Path) -> Export:
    export = Export(export_id=0, owner="ann", created_us=now_us(), path="p",
                    out_base=str(directory), fmt="mp4", name="n", bandwidth_limit_kbps=0,
                    options=options)
    export.jobs.append(Job(export_id=0, index=0, server_id=1, device_id=2, device_name="Cam",
                           start_us=1, end_us=2, status=Status.COMPLETED, stopped=True))
    return export


def test_store_keeps_options_and_stopped(tmp_path: Path) -> None:
    options = ExportOptions(mode="live", audio=False, keepalive_s=9, render=FULL_RENDER)
    store = ExportStore(tmp_path / "s.sqlite3")
    export_id = store.insert(_export(options, tmp_path))
    store.close()
    loaded = ExportStore(tmp_path / "s.sqlite3").load_all()
    assert loaded[0].export_id == export_id and loaded[0].options == options
    assert loaded[0].jobs[0].stopped is True


def test_a_store_of_the_previous_release_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""
    CREATE TABLE exports (export_id INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL,
      created_us INTEGER NOT NULL, path TEXT NOT NULL, out_base TEXT NOT NULL,
      format TEXT NOT NULL, name TEXT NOT NULL, bandwidth_limit_kbps INTEGER NOT NULL,
      retried_from INTEGER, finished_us INTEGER, expires_us INTEGER);
    CREATE TABLE jobs (export_id INTEGER NOT NULL REFERENCES exports(export_id) ON DELETE CASCADE,
      idx INTEGER NOT NULL, server_id TEXT NOT NULL, device_id TEXT NOT NULL,
      device_name TEXT NOT NULL, start_us INTEGER NOT NULL, end_us INTEGER NOT NULL,
      status TEXT NOT NULL, progress INTEGER NOT NULL, bytes_written INTEGER NOT NULL,
      bandwidth_kbps INTEGER NOT NULL, errorcode INTEGER NOT NULL, description TEXT NOT NULL,
      started_us INTEGER, finished_us INTEGER, file TEXT, PRIMARY KEY (export_id, idx));
    INSERT INTO exports VALUES (7, 'ann', 1, '', '/x', 'mkv', '', 0, NULL, 5, 9);
    INSERT INTO jobs VALUES (7, 0, '1', '2', 'Cam', 1, 2, 'FAILED', 0, 0, 0, -9, 'none', 1, 2,
      NULL);
    """)
    db.commit()
    db.close()
    store = ExportStore(path)
    (old,) = store.load_all()
    assert old.options == ExportOptions() and old.jobs[0].stopped is False
    new_id = store.insert(_export(ExportOptions(output="snapshot"), tmp_path))
    assert [e.options.output for e in store.load_all()] == ["stream", "snapshot"]
    assert new_id == 8


async def test_status_and_manifest_show_the_options_and_rebuild_keeps_them(
        client: Any, make_config: Any, api_archive: dict[str, Any]) -> None:
    base = api_archive["start_us"]
    devices = [(STEADY, format_timestamp(base + 2_000_000), format_timestamp(base + 6_000_000))]
    root = await command(client, "exportVideo", body=export_body(
        devices, path="opts", audio="false", maxfilesize="50", keepalive="600"))
    export = await wait_export(client, int(root.findtext("exportid")))
    assert export.findtext("status") == "COMPLETED"
    assert [export.findtext(t) for t in ("mode", "output", "maxfilesize", "audio",
                                         "keepalive")] == ["archive", "stream", "50", "false",
                                                           "600"]
    assert export.findtext("devices/device/stopped") == "false"
    config = make_config()
    directory = config.server.export_roots[0] / "opts" / export.findtext("exportid")
    manifest = etree.parse(str(directory / "manifest.xml")).getroot()
    assert schema("manifest").validate(manifest), schema("manifest").error_log
    assert manifest.findtext("audio") == "false" and manifest.findtext("keepalive") == "600"
    rebuilt = export_from_manifest(directory, 24)
    assert rebuilt.options == ExportOptions(audio=False, maxfilesize_mb=50, keepalive_s=600)
    plain = await command(client, "exportVideo", body=export_body(devices, path="plain"))
    plain_export = await wait_export(client, int(plain.findtext("exportid")))
    assert [plain_export.findtext(t) for t in ("mode", "output", "maxfilesize", "audio",
                                               "keepalive")] == ["archive", "stream", "0",
                                                                 "true", "0"]
