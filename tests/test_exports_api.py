"""exportVideo / getExportVideoStatus end to end: real app and archive, files reopened with PyAV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import pytest
from apiclient import command, export_body, wait_export
from conftest import API_DEVICES

from sense_plugin.timestamps import format_timestamp, parse_timestamp

STEADY, GAPPY, MKV = API_DEVICES["Steady"], API_DEVICES["Gappy"], API_DEVICES["Matroska"]


def span(archive: dict[str, Any], start_s: float, end_s: float) -> tuple[str, str]:
    base = archive["start_us"]
    return (format_timestamp(base + int(start_s * 1e6)), format_timestamp(base + int(end_s * 1e6)))


async def create(client: Any, devices: list[tuple[int, str, str]], **fields: Any) -> int:
    root = await command(client, "exportVideo", body=export_body(devices, **fields))
    return int(root.findtext("exportid"))


def output_file(config: Any, export: Any, device_index: int = 0) -> Path:
    device = export.findall("devices/device")[device_index]
    name = device.findtext("files/file/name")
    base = config.server.export_roots[0] / (export.findtext("path") or "unnamed")
    return base / export.findtext("exportid") / name


def video_frames(path: Path) -> list[tuple[int, bool]]:
    """(pts in µs, keyframe) of every video packet, in decode order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        scale = stream.time_base
        return [(int(p.pts * scale * 1_000_000), p.is_keyframe)
                for p in container.demux(stream) if p.size]


async def test_export_cuts_from_keyframe_before_start(client: Any, make_config: Any,
                                                     api_archive: dict[str, Any]) -> None:
    start, end = span(api_archive, 12.35, 31.0)
    export_id = await create(client, [(STEADY, start, end)], path="case-1", name="Incident")
    export = await wait_export(client, export_id)
    assert export.findtext("status") == "COMPLETED"
    device = export.find("devices/device")
    assert device.findtext("progress") == "100"
    file_el = device.find("files/file")
    # keyframe every 1 s (10 frames at 10 fps): output starts at 12.0 s, ends before 31.0 s
    assert file_el.findtext("starttime") == span(api_archive, 12.0, 12.0)[0]
    assert file_el.findtext("endtime") == span(api_archive, 30.9, 30.9)[0]
    assert file_el.findtext("framecount") == "190"
    path = output_file(make_config(), export)
    assert path.name.startswith(f"Steady_{STEADY}_")
    frames = video_frames(path)
    assert len(frames) == 190 and frames[0] == (0, True)
    pts = sorted(p for p, _ in frames)
    assert pts[-1] == 18_900_000
    assert int(file_el.findtext("size")) == path.stat().st_size
    with av.open(str(path)) as container:
        first = next(container.decode(video=0))
        assert first.key_frame


async def test_gap_is_kept_and_reported(client: Any, make_config: Any,
                                        api_archive: dict[str, Any]) -> None:
    start, end = span(api_archive, 10.0, 50.0)
    export_id = await create(client, [(GAPPY, start, end)], format="mkv")
    export = await wait_export(client, export_id)
    device = export.find("devices/device")
    assert device.findtext("status") == "COMPLETED", device.findtext("description")
    gaps = device.findall("files/file/gaps/gap")
    assert len(gaps) == 1
    gap_start = parse_timestamp(gaps[0].findtext("starttime"))
    gap_end = parse_timestamp(gaps[0].findtext("endtime"))
    assert gap_start == api_archive["start_us"] + 20_000_000
    assert gap_end == api_archive["start_us"] + 40_000_000
    frames = video_frames(output_file(make_config(), export))
    assert len(frames) == 200
    pts = sorted(p for p, _ in frames)
    jumps = [b - a for a, b in zip(pts, pts[1:], strict=False) if b - a > 100_000]
    assert jumps == [20_100_000]  # the 20 s hole stays a hole in the timeline


async def test_several_devices_one_failing_with_no_record(client: Any,
                                                          api_archive: dict[str, Any]) -> None:
    start, end = span(api_archive, 5.0, 15.0)
    hole = span(api_archive, 22.0, 38.0)
    export_id = await create(client, [(MKV, start, end), (GAPPY, *hole)], format="ts")
    export = await wait_export(client, export_id)
    assert export.findtext("status") == "FAILED"
    ok, failed = export.findall("devices/device")
    assert ok.findtext("status") == "COMPLETED"
    assert failed.findtext("status") == "FAILED"
    assert failed.findtext("errorcode") == "-9"
    assert str(GAPPY) in failed.findtext("description")


async def test_remove_completed_export_deletes_files(client: Any, make_config: Any,
                                                     api_archive: dict[str, Any]) -> None:
    start, end = span(api_archive, 0, 10)
    export_id = await create(client, [(STEADY, start, end)])
    export = await wait_export(client, export_id)
    path = output_file(make_config(), export)
    assert path.exists()
    root = await command(client, "exportVideo", action="remove", exportid=export_id)
    assert root.findtext("status") == "REMOVED"
    assert not path.exists()
    status = await command(client, "getExportVideoStatus", exportid=export_id)
    assert status.findtext("exports/export/status") == "REMOVED"


async def test_remove_running_export_stops_fast(make_client: Any, make_config: Any,
                                                api_archive: dict[str, Any]) -> None:
    client = await make_client(make_config())
    start, end = span(api_archive, 0, 60)
    export_id = await create(client, [(STEADY, start, end)], bandwidth=100)
    await wait_export(client, export_id, until=("SYNCING",))
    body = f"<Export><ExportId>{export_id}</ExportId><Action>Remove</Action></Export>"
    loop = __import__("asyncio").get_running_loop()
    began = loop.time()
    root = await command(client, "exportVideo", body=body)
    assert loop.time() - began < 1.5
    assert root.findtext("status") == "REMOVED"
    root = make_config().server.export_roots[0]
    assert not (root / "unnamed" / str(export_id)).exists()
    assert not (root / "unnamed").exists()  # no empty folders left behind


async def test_remove_queued_export(make_client: Any, make_config: Any,
                                    api_archive: dict[str, Any]) -> None:
    client = await make_client(make_config(export={"max_concurrent_jobs": 1}))
    start, end = span(api_archive, 0, 60)
    first = await create(client, [(STEADY, start, end)], bandwidth=100)
    second = await create(client, [(MKV, start, end)])
    root = await command(client, "exportVideo", action="remove", exportid=second)
    assert root.findtext("status") == "REMOVED"
    await command(client, "exportVideo", action="remove", exportid=first)
    listing = await command(client, "getExportVideoStatus", status="REMOVED")
    assert listing.find("exports").get("count") == "2"


async def test_progress_is_monotonic_and_cap_holds(client: Any,
                                                   api_archive: dict[str, Any]) -> None:
    start, end = span(api_archive, 0, 60)
    export_id = await create(client, [(STEADY, start, end)], bandwidth=400)
    seen: list[int] = []
    rates: list[int] = []
    while True:
        root = await command(client, "getExportVideoStatus", exportid=export_id)
        device = root.find("exports/export/devices/device")
        seen.append(int(device.findtext("progress")))
        if device.findtext("status") == "SYNCING":
            rates.append(int(device.findtext("bandwidth")))
        if device.findtext("status") == "COMPLETED":
            break
        await __import__("asyncio").sleep(0.2)
    assert seen == sorted(seen) and seen[-1] == 100 and max(seen[:-1]) < 100
    assert len(set(seen)) > 3
    steady = rates[len(rates) // 3:]
    assert steady and max(steady) <= 400 * 1.05


@pytest.mark.parametrize(("mutate", "code"), [
    (lambda d: d.replace("<devices>", "<devices><device><deviceid>1</deviceid>"
                         "<starttime>2026-01-01 00:00:00</starttime>"
                         "<endtime>2026-01-01 00:01:00</endtime></device>"), -2),
    (lambda d: d.replace("</export>", "<path>../escape</path></export>"), -1004),
    (lambda d: d.replace("</export>", "<format>avi</format></export>"), -22),
    (lambda d: d.replace("</export>", "<bandwidth>-5</bandwidth></export>"), -22),
    (lambda d: d.replace("<deviceid>", "<serverid>42</serverid><deviceid>", 1), -17),
    (lambda d: d.replace("</export>", "<path></path></export>"), -23),
    (lambda d: d.replace("<devices>", "<devices><device><deviceid>"
                         f"{API_DEVICES['Off']}</deviceid><starttime>2026-01-01 00:00:00"
                         "</starttime><endtime>2026-01-01 00:01:00</endtime></device>"), -21),
], ids=["unknown-device", "dotdot", "format", "bandwidth", "server", "empty-path", "disabled"])
async def test_invalid_request_queues_nothing(client: Any, api_archive: dict[str, Any],
                                              mutate: Any, code: int) -> None:
    body = mutate(export_body([(STEADY, *span(api_archive, 0, 10))]))
    await command(client, "exportVideo", body=body, expect=code)
    listing = await command(client, "getExportVideoStatus")
    assert listing.find("exports").get("count") == "0"


async def test_range_checks(client: Any, api_archive: dict[str, Any]) -> None:
    start, end = span(api_archive, 0, 10)
    await command(client, "exportVideo", body=export_body([(STEADY, end, start)]), expect=-22)
    await command(client, "exportVideo", body=export_body([(STEADY, start, "2099-01-01 00:00:00")]),
                  expect=-22)
    await command(client, "exportVideo", body=export_body([(STEADY, start, "2026-02-30 00:00:00")]),
                  expect=-4)
    await command(client, "getExportVideoStatus", exportid="abc", expect=-57)
    await command(client, "getExportVideoStatus", exportid=999, expect=-57)


async def test_queue_limit_refuses_admission(make_client: Any, make_config: Any,
                                             api_archive: dict[str, Any]) -> None:
    client = await make_client(make_config(export={"max_queued_jobs": 2, "max_concurrent_jobs": 1}))
    start, end = span(api_archive, 0, 60)
    await create(client, [(STEADY, start, end)], bandwidth=100)
    await wait_export(client, 1, until=("SYNCING",))
    await create(client, [(MKV, start, end), (STEADY, start, end)])
    await command(client, "exportVideo", body=export_body([(MKV, start, end)]), expect=-1005)


async def test_ids_survive_restart(make_client: Any, make_config: Any,
                                   api_archive: dict[str, Any]) -> None:
    config = make_config()
    client = await make_client(config)
    start, end = span(api_archive, 0, 5)
    first = await create(client, [(STEADY, start, end)])
    await wait_export(client, first)
    await client.close()
    client = await make_client(config)
    second = await create(client, [(STEADY, start, end)])
    assert second > first
    root = await command(client, "getExportVideoStatus", exportid=first)
    assert root.findtext("exports/export/status") == "COMPLETED"


async def test_shutdown_with_capped_exports_loses_nothing(make_client: Any, make_config: Any,
                                                          api_archive: dict[str, Any]) -> None:
    """Closing the app interrupts running jobs promptly; after a restart every job resumes."""
    import asyncio

    config = make_config()
    client = await make_client(config)
    body = export_body([(STEADY, *span(api_archive, 0, 60))], bandwidth=100)
    ids = [int((await command(client, "exportVideo", body=body)).findtext("exportid"))
           for _ in range(5)]
    await wait_export(client, ids[1], until=("SYNCING",))
    await asyncio.wait_for(client.close(), 10)  # a hang guard, not a speed check
    client = await make_client(config)
    listing = await command(client, "getExportVideoStatus")
    statuses = [e.findtext("status") for e in listing.iterfind("exports/export")]
    assert len(statuses) == 5 and set(statuses) <= {"PENDING", "SYNCING"}
    for export_id in ids:
        await command(client, "exportVideo", action="remove", exportid=export_id)


async def test_paged_status_carries_the_total_and_progress_follows_spec(
        client: Any, api_archive: dict[str, Any]) -> None:
    done = await create(client, [(STEADY, *span(api_archive, 1, 3))])
    await wait_export(client, done)
    await command(client, "exportVideo", action="remove", exportid=done)
    running = await create(client, [(STEADY, *span(api_archive, 0, 40))], bandwidth=60)
    export = await wait_export(client, running, until=("SYNCING",))
    for _ in range(200):
        export = (await command(client, "getExportVideoStatus", exportid=running)) \
            .find("exports/export")
        if int(export.findtext("devices/device/progress")) > 0:
            break
        await __import__("asyncio").sleep(0.05)
    await command(client, "exportVideo", action="remove", exportid=running)
    kept = int(export.findtext("devices/device/progress"))
    for export_id, expected in ((done, 100), (running, None)):
        root = await command(client, "getExportVideoStatus", exportid=export_id)
        progress = int(root.findtext("exports/export/devices/device/progress"))
        assert root.findtext("exports/export/status") == "REMOVED"
        if expected is None:  # removed while running: the value it had, never 100
            assert kept <= progress < 100
        else:  # completed, then removed: still 100
            assert progress == 100
    await create(client, [(STEADY, *span(api_archive, 5, 6))])
    page = await command(client, "getExportVideoStatus", limit=2)
    assert page.find("exports").get("count") == "2" and page.find("exports").get("total") == "3"
    filtered = await command(client, "getExportVideoStatus", limit=1, status="REMOVED")
    assert filtered.find("exports").get("total") == "2"
    whole = await command(client, "getExportVideoStatus")
    assert whole.find("exports").get("total") is None
