"""``python -m bench.snapshot_export``: request → COMPLETED of a snapshot export, 1080p (p50).

End to end through the real app (aiohttp test server on loopback, real SQLite job store,
worker processes): ``exportVideo`` with ``<output>snapshot</output>`` at a random instant of
the render bench's 1080p25 H.264 source (a keyframe every 2 s, in page cache after the first
round), then ``getExportVideoStatus`` polled every 5 ms until COMPLETED. The in-process
figure of the decode alone is ``bench.snapshot``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from lxml import etree

from bench.render import RESULTS, T0_US, log, make_source
from sense_plugin.api.app import create_app
from sense_plugin.config import config_from_dict
from sense_plugin.naming import segment_filename
from sense_plugin.timestamps import format_timestamp

DEVICE = 4711
SECONDS = 8


async def one(client: TestClient, instant_us: int) -> float:
    body = (f"<export><devices><device><deviceid>{DEVICE}</deviceid><starttime>"
            f"{format_timestamp(instant_us)}</starttime></device></devices>"
            "<output>snapshot</output></export>")
    started = time.perf_counter()
    response = await client.post("/command", params={"command": "exportVideo"}, data=body)
    export_id = etree.fromstring(await response.read()).findtext("exportid")
    assert export_id, "exportVideo refused the snapshot"
    while True:
        response = await client.get("/command", params={"command": "getExportVideoStatus",
                                                        "exportid": export_id})
        status = etree.fromstring(await response.read()).findtext("exports/export/status")
        if status in ("COMPLETED", "FAILED", "REMOVED"):
            assert status == "COMPLETED", status
            return (time.perf_counter() - started) * 1000
        await asyncio.sleep(0.005)


async def run(count: int, work: Path) -> list[float]:
    archive = work / "cam"
    archive.mkdir()
    shutil.copy(make_source(SECONDS), archive / segment_filename(T0_US, "mp4"))
    config = config_from_dict({
        "server": {"serverid": "1", "name": "bench", "data_dir": str(work / "data"),
                   "export_roots": [str(work / "exports")]},
        "archive": {"demo": False},
        "devices": [{"deviceid": str(DEVICE), "name": "Cam", "archive_dir": str(archive)}],
    }, base_dir=work)
    rng = random.Random(4711)
    async with TestClient(TestServer(create_app(config))) as client:
        await asyncio.sleep(1.0)  # index scan, workers up
        for _ in range(3):  # page cache, imports
            await one(client, T0_US + 1_000_000)
        return [await one(client, T0_US + rng.randrange(0, SECONDS * 1_000_000))
                for _ in range(count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.snapshot_export")
    parser.add_argument("--count", type=int, default=30)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        times = sorted(asyncio.run(run(args.count, Path(tmp))))
    row = {"p50_ms": statistics.median(times),
           "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))], "max_ms": times[-1]}
    date = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "snapshot-export.json").write_text(
        json.dumps({"date": date, "count": args.count, "results": row}, indent=2) + "\n")
    text = (f"Snapshot export bench of {date}: {args.count} exportVideo snapshots (1920x1080 "
            "JPEG) of random instants, request to COMPLETED over HTTP, target p50 <= 300 ms.\n\n"
            "| p50 ms | p99 ms | max ms |\n|---|---|---|\n"
            f"| {row['p50_ms']:.0f} | {row['p99_ms']:.0f} | {row['max_ms']:.0f} |\n")
    (RESULTS / "snapshot-export.md").write_text(text)
    log(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
