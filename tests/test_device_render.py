"""``<device><render>``: a mask drawn on one camera masks that camera's file only, and replaces
the export's ``<render>`` for it; the options survive the job store's JSON."""

from __future__ import annotations

from typing import Any

import av
from apiclient import command, schema, wait_export
from conftest import API_DEVICES
from lxml import etree

from sense_plugin.media.exportoptions import ExportOptions
from sense_plugin.media.renderoptions import Mask, Rect, RenderOptions
from sense_plugin.timestamps import format_timestamp

US = 1_000_000
AREA = Rect(0.05, 0.05, 0.5, 0.5)
MASK = ("<mask><x>0.05</x><y>0.05</y><w>0.5</w><h>0.5</h><style>solid</style></mask>"
        "<quality>high</quality>")


def mask_variances(path: str) -> list[float]:
    """Luma variance inside :data:`AREA` of every fifth frame (a solid mask: about 0)."""
    found = []
    with av.open(path) as container:
        for frame in list(container.decode(video=0))[::5]:
            luma = frame.to_ndarray(format="yuv420p")[:frame.height].astype(float)
            x, y, w, h = AREA.pixels(frame.width, frame.height)
            found.append(float(luma[y + 2:y + h - 2, x + 2:x + w - 2].var()))
    return found


async def test_a_mask_belongs_to_the_camera_it_was_drawn_on(
        client: Any, make_config: Any, api_archive: dict[str, Any]) -> None:
    start, end = (format_timestamp(api_archive["start_us"] + s * US) for s in (12, 15))
    devices = "".join(
        f"<device><deviceid>{API_DEVICES[name]}</deviceid><starttime>{start}</starttime>"
        f"<endtime>{end}</endtime>{render}</device>"
        for name, render in (("Steady", f"<render>{MASK}</render>"), ("Matroska", "")))
    body = f"<export><devices>{devices}</devices><path>permask</path></export>"
    assert schema("export-request").validate(etree.fromstring(body))
    root = await command(client, "exportVideo", body=body)
    export = await wait_export(client, int(root.findtext("exportid")))
    assert export.findtext("status") == "COMPLETED", etree.tostring(export).decode()
    directory = make_config().server.export_roots[0] / "permask" / export.findtext("exportid")
    files = {d.findtext("deviceid"): directory / d.findtext("files/file/name")
             for d in export.iterfind("devices/device")}
    masked = mask_variances(str(files[str(API_DEVICES["Steady"])]))
    plain = mask_variances(str(files[str(API_DEVICES["Matroska"])]))
    assert masked and max(masked) < 1.0, masked
    assert plain and min(plain) > 5.0, plain
    # the manifest says which camera's files were re-encoded, with its mask
    manifest = etree.parse(str(directory / "manifest.xml")).getroot()
    assert schema("manifest").validate(manifest), schema("manifest").error_log
    assert manifest.findtext("rendering/method").startswith("stream copy")
    own = {d.findtext("deviceid"): d.find("rendering") for d in manifest.iterfind(
        "devices/device")}
    assert own[str(API_DEVICES["Matroska"])] is None
    steady = own[str(API_DEVICES["Steady"])]
    assert steady is not None and steady.findtext("method").startswith("rendered")
    options = {o.get("name"): o.text for o in steady.iterfind("option")}
    assert options["mask1"] == "solid x=0.05 y=0.05 w=0.5 h=0.5"


async def test_a_device_render_replaces_the_exports(
        client: Any, make_config: Any, api_archive: dict[str, Any]) -> None:
    """The export masks every camera; the camera with its own (mask-free) render is not
    masked; a snapshot's device render is checked like the export's."""
    start, end = (format_timestamp(api_archive["start_us"] + s * US) for s in (12, 15))
    devices = "".join(
        f"<device><deviceid>{API_DEVICES[name]}</deviceid><starttime>{start}</starttime>"
        f"<endtime>{end}</endtime>{render}</device>"
        for name, render in (("Steady", ""),
                             ("Matroska", "<render><quality>high</quality></render>")))
    body = (f"<export><devices>{devices}</devices><path>override</path>"
            f"<render>{MASK}</render></export>")
    root = await command(client, "exportVideo", body=body)
    export = await wait_export(client, int(root.findtext("exportid")))
    assert export.findtext("status") == "COMPLETED", etree.tostring(export).decode()
    directory = make_config().server.export_roots[0] / "override" / export.findtext("exportid")
    files = {d.findtext("deviceid"): directory / d.findtext("files/file/name")
             for d in export.iterfind("devices/device")}
    assert max(mask_variances(str(files[str(API_DEVICES["Steady"])]))) < 1.0
    assert min(mask_variances(str(files[str(API_DEVICES["Matroska"])]))) > 5.0

    too_wide = body.replace("<render><quality>high</quality></render>",
                            "<render><width>4096</width></render>")
    root = await command(client, "exportVideo", body=too_wide, expect=-22)
    assert f"device {API_DEVICES['Matroska']}: render/width 4096" in root.findtext(
        "description", "")

    snapshot = (f"<export><devices><device><deviceid>{API_DEVICES['Steady']}</deviceid>"
                f"<starttime>{start}</starttime><render><quality>fast</quality></render>"
                f"</device></devices><output>snapshot</output><format>png</format></export>")
    root = await command(client, "exportVideo", body=snapshot, expect=-22)
    assert "render/quality does not apply to a snapshot" in root.findtext("description", "")


def test_device_renders_round_trip_and_pick_per_device() -> None:
    export_render = RenderOptions(masks=(Mask(AREA, "solid"),))
    own = RenderOptions(width=32)
    options = ExportOptions(render=export_render, device_renders=((1, own),))
    assert ExportOptions.loads(options.dumps()) == options
    assert options.for_device(0).render == export_render
    assert options.for_device(1).render == own
    assert options.for_device(1).device_renders == ()
    assert ExportOptions().for_device(3) == ExportOptions()
