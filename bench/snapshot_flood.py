"""``python -m bench.snapshot_flood [--tree DIR]``: another user's small download while 16
view-only clients flood ``getSnapshot``, against a real ``sense-plugin serve`` (auth on).

The server runs from ``--tree`` (default: this checkout), so the same script measures the
tree before a change (``--tree /path/to/main``) and after. Archive: one minute of 1280x720
H.264 (``demo-archive``). User alice downloads ``manifest.xml`` of a small finished export
(sequentially, 80 times) idle and then while 16 clients, each its own view-only user, ask for
full-size snapshots at random instants as fast as answers come (a 503 is asked again at once).
Figures: median, p95 and max of alice's download, and the flood's answers by HTTP status.
Appends one line to bench/results/snapshot-flood.txt. No test asserts on these numbers.
"""

from __future__ import annotations

import asyncio
import base64
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

from bench.server import export_body, fmt_ts
from bench.treeserve import DEVICE, append_result, tree_arguments, write_auth_config
from sense_plugin.testing.serverprocess import ServerProcess

RESULTS = Path(__file__).resolve().parent / "results" / "snapshot-flood.txt"
CLIENTS = 16
USERS = {"alice": ["view", "export"], **{f"viewer{i}": ["view"] for i in range(CLIENTS)}}


def basic(user: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:pw-{user}".encode()).decode()}


async def timed_get(session: aiohttp.ClientSession, url: str, user: str) -> tuple[float, int]:
    began = time.perf_counter()
    async with session.get(url, headers=basic(user)) as response:
        await response.read()
        return (time.perf_counter() - began) * 1000, response.status


async def prepare(url: str, range_us: tuple[int, int]) -> str:
    async with aiohttp.ClientSession() as session:
        body = export_body([(DEVICE, range_us[0], range_us[0] + 2_000_000)])
        async with session.post(url + "/command?command=exportVideo", data=body,
                                headers={"Content-Type": "text/xml", **basic("alice")}) as r:
            export_id = (await r.text()).split("<exportid>")[1].split("<")[0]
        status_url = f"{url}/command?command=getExportVideoStatus&exportid={export_id}"
        for _ in range(1200):
            async with session.get(status_url, headers=basic("alice")) as r:
                if "<status>COMPLETED</status>" in await r.text():
                    break
            await asyncio.sleep(0.05)
        for user in USERS:  # each Basic credential hashed once, then cached
            await timed_get(session, url + "/info", user)
            await timed_get(session, url + "/command?command=getDeviceList", user)
    return f"{url}/command?command=downloadExportVideo&exportid={export_id}&file=manifest.xml"


async def downloads(session: aiohttp.ClientSession, url: str) -> list[float]:
    times = []
    for _ in range(80):
        elapsed_ms, status = await timed_get(session, url, "alice")
        assert status == 200, status
        times.append(elapsed_ms)
    return times


async def measure(url: str, download: str, range_us: tuple[int, int]) -> dict[str, object]:
    async with aiohttp.ClientSession() as alice, aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0)) as crowd:
        idle = await downloads(alice, download)
        statuses: Counter[int] = Counter()
        running = True

        async def viewer(user: str) -> None:
            rng = random.Random(user)
            while running:
                instant = rng.randrange(range_us[0] + 1_000_000, range_us[1] - 1_000_000)
                query = f"/command?command=getSnapshot&deviceid={DEVICE}&time={fmt_ts(instant)}"
                _, status = await timed_get(crowd, url + query, user)
                statuses[status] += 1

        tasks = [asyncio.create_task(viewer(f"viewer{i}")) for i in range(CLIENTS)]
        await asyncio.sleep(1.0)
        busy = await downloads(alice, download)
        running = False
        await asyncio.gather(*tasks)
    return {"idle": idle, "busy": busy, "answers": dict(statuses)}


def summary(times: list[float]) -> str:
    p95 = statistics.quantiles(times, n=20)[18]
    return f"p50 {statistics.median(times):.1f} ms, p95 {p95:.1f} ms, max {max(times):.1f} ms"


def main() -> int:
    args = tree_arguments(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = write_auth_config(root, {u: (f"pw-{u}", perms) for u, perms in USERS.items()},
                                   ["max_pending_hashes = 64"])
        subprocess.run([sys.executable, "-m", "sense_plugin", "demo-archive", "--config",
                        str(config), "--minutes", "1", "--size", "1280x720"], check=True,
                       capture_output=True)
        now_us = int(time.time()) * 1_000_000
        range_us = (now_us - 60_000_000, now_us - 5_000_000)
        server = ServerProcess(config, root / "server.log", tree=args.tree)
        try:
            server.start()
            download = asyncio.run(prepare(server.url, range_us))
            figures = asyncio.run(measure(server.url, download, range_us))
        finally:
            if server.proc is not None:
                server.stop(timeout_s=30)
    append_result(RESULTS, f"{args.label}: alice's manifest.xml download idle "
                  f"{summary(figures['idle'])}; during {CLIENTS} snapshot clients "  # type: ignore
                  f"{summary(figures['busy'])}; snapshot answers by HTTP status "  # type: ignore
                  f"{figures['answers']}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
