"""``GET /metrics`` scraped over HTTP and parsed with prometheus_client's own text parser;
the access log (one line per request, no secrets)."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from apiclient import command, export_body, wait_export
from conftest import API_DEVICES
from prometheus_client.parser import text_string_to_metric_families

from sense_plugin.passwords import hash_password
from sense_plugin.timestamps import format_timestamp

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: Any, headers: dict[str, str] | None = None) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def test_export_and_request_metrics(client: Any, api_archive: dict[str, Any]) -> None:
    steady = API_DEVICES["Steady"]
    start = format_timestamp(api_archive["start_us"])
    end = format_timestamp(api_archive["start_us"] + 20_000_000)
    before = await scrape(client)
    assert value(before, "sense_exports", status="COMPLETED") == 0
    assert value(before, "sense_export_bytes_total") == 0
    created = await command(client, "exportVideo", body=export_body([(steady, start, end)]))
    export = await wait_export(client, int(created.findtext("exportid")))
    assert export.findtext("status") == "COMPLETED"
    written = int(export.findtext("devices/device/bytes"))
    await command(client, "noSuchCommand", expect=-1)
    await command(client, "getRecordings", expect=-2, deviceid=12345)
    after = await scrape(client)
    assert value(after, "sense_exports", status="COMPLETED") == 1
    assert value(after, "sense_exports", status="SYNCING") == 0
    assert value(after, "sense_export_jobs", status="COMPLETED") == 1
    assert value(after, "sense_export_bytes_total") == written > 0
    assert value(after, "sense_export_seconds_count", status="COMPLETED") == 1
    assert value(after, "sense_export_seconds_sum", status="COMPLETED") > 0
    assert value(after, "sense_http_requests_total", command="exportVideo", errorcode="0") == 1
    assert value(after, "sense_http_requests_total", command="unknown", errorcode="-1") == 1
    assert value(after, "sense_http_requests_total", command="getRecordings",
                 errorcode="-2") == 1
    assert value(after, "sense_http_requests_total", command="metrics", errorcode="-") == 1
    polls = value(after, "sense_http_requests_total", command="getExportVideoStatus",
                  errorcode="0")
    assert value(after, "sense_http_request_seconds_count",
                 command="getExportVideoStatus") == polls >= 1


async def test_recorder_metrics(make_client: Callable[..., Any],
                                archive_config: Callable[..., Any],
                                write_segment: Callable[..., Path], tmp_path: Path) -> None:
    clip = write_segment(tmp_path / "src", 1_795_168_800_000_000, duration_s=10.0)
    config = archive_config(devices=[{"name": "Live", "source": str(clip)}, {"name": "Stored"}],
                            segment_seconds=1)
    live_id = str(config.devices[0].device_id)
    client = await make_client(config)
    deadline = time.monotonic() + 20
    while True:
        samples = await scrape(client)
        if samples.get(("sense_recorder_bytes_total", (("deviceid", live_id),)), 0) > 0:
            break
        assert time.monotonic() < deadline, samples
        await asyncio.sleep(0.2)
    assert value(samples, "sense_recorder_up", deviceid=live_id) == 1
    stored = str(config.devices[1].device_id)
    assert ("sense_recorder_up", (("deviceid", stored),)) not in samples  # no recorder


async def test_metrics_need_the_same_credentials_as_commands(
        make_client: Callable[..., Any], make_config: Callable[..., Any]) -> None:
    users = [{"name": "viewer", "password_hash": hash_password("s3cret-pw"),
              "permissions": ["view"]}]
    client = await make_client(make_config(auth={"enabled": True, "users": users}))
    response = await client.get("/metrics")
    assert response.status == 401
    assert 'errorcode="-1001"' in await response.text()
    basic = "Basic " + base64.b64encode(b"viewer:s3cret-pw").decode()
    samples = await scrape(client, {"Authorization": basic})
    assert value(samples, "sense_http_requests_total", command="metrics",
                 errorcode="-1001") == 1


async def test_access_log_has_one_line_per_request_and_no_secrets(
        make_client: Callable[..., Any], make_config: Callable[..., Any],
        caplog: pytest.LogCaptureFixture) -> None:
    users = [{"name": "viewer", "password_hash": hash_password("s3cret-pw"),
              "permissions": ["view"]}]
    client = await make_client(make_config(auth={"enabled": True, "users": users}))
    caplog.set_level(logging.INFO, logger="sense_plugin.access")
    login = ("<AuthenticateUser><username>viewer</username><password>s3cret-pw</password>"
             "</AuthenticateUser>")
    response = await client.post("/webservice", data=login)
    assert response.status == 200
    key = response.cookies["sessionkey"].value
    await command(client, "getDeviceList", headers={"Cookie": f"sessionkey={key}"},
                  sessionkey="in-the-query-too")
    client.session.cookie_jar.clear()
    await command(client, "getDeviceList", expect=-1001)
    lines = [r.getMessage() for r in caplog.records if r.name == "sense_plugin.access"]
    assert len(lines) == 3, lines
    assert '"POST /webservice" 200 errorcode=0' in lines[0]
    assert "command=getDeviceList" in lines[1] and " 200 errorcode=0 " in lines[1]
    assert "sessionkey=%2A%2A%2A" in lines[1] or "sessionkey=***" in lines[1]
    assert " 401 errorcode=-1001 " in lines[2]
    text = "\n".join(lines)
    assert "s3cret-pw" not in text and key not in text and "in-the-query-too" not in text
