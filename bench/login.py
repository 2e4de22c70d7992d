"""``python -m bench.login``: login hardening figures against a real ``sense-plugin serve``.

1. Timing of a login for an unknown user vs. a wrong password (medians of 200 each, alternated,
   sequential, failure limits raised out of the way): equal means names cannot be enumerated.
2. 300 different wrong passwords sent in parallel from one address with the default limits:
   how many were hashed, throttled or refused busy; then the right password.
3. A download (manifest.xml of a small export) and ``/info`` while 600 wrong passwords for
   different users arrive in parallel, against the same requests idle (median and max).

Writes ``bench/results/login.txt``. No test asserts on these numbers.
"""

from __future__ import annotations

import asyncio
import base64
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

from bench.archive import BENCH_DIR, CACHE_DIR
from bench.server import Server, export_body
from sense_plugin.passwords import hash_password

RESULTS = BENCH_DIR / "results" / "login.txt"
PASSWORD = "bench-Pw-1234"
DEVICE = 9890179877273119875
BASIC = {"Authorization": "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()}


def login_body(user: str, password: str) -> bytes:
    return (f"<AuthenticateUser><username>{user}</username><password>{password}</password>"
            "</AuthenticateUser>").encode()


def write_config(directory: Path, limits: str) -> Path:
    config = directory / "sense.toml"
    config.write_text(f"""
[server]
serverid = "7015498111931795223"
data_dir = "data"
[auth]
enabled = true
{limits}
[[auth.users]]
name = "alice"
password_hash = "{hash_password(PASSWORD)}"
permissions = ["view", "export"]
[archive]
demo = false
[[devices]]
deviceid = "{DEVICE}"
name = "Entrance"
""")
    return config


async def timed(session: aiohttp.ClientSession, method: str, url: str, **kwargs: object) -> float:
    started = time.perf_counter()
    async with session.request(method, url, **kwargs) as response:  # type: ignore[arg-type]
        await response.read()
    return (time.perf_counter() - started) * 1000


async def enumeration(url: str) -> dict[str, float]:
    unknown, wrong = [], []
    async with aiohttp.ClientSession() as session:
        for i in range(200):
            unknown.append(await timed(session, "POST", url + "/webservice",
                                       data=login_body(f"nobody{i}", "guess")))
            wrong.append(await timed(session, "POST", url + "/webservice",
                                     data=login_body("alice", f"guess{i}")))
    return {"unknown_ms": statistics.median(unknown), "wrong_ms": statistics.median(wrong)}


async def parallel_guesses(url: str) -> tuple[Counter[str], str]:
    async with aiohttp.ClientSession() as session:
        async def guess(i: int) -> str:
            async with session.post(url + "/webservice",
                                    data=login_body("alice", f"guess{i}")) as response:
                text = await response.text()
            if "too many failed" in text:
                return "throttled"
            return "busy" if response.status == 503 else "hashed"

        counts = Counter(await asyncio.gather(*(guess(i) for i in range(300))))
        async with session.post(url + "/webservice",
                                data=login_body("alice", PASSWORD)) as response:
            text = await response.text()
    return counts, "refused (throttled)" if "too many failed" in text else "ACCEPTED"


async def latencies(session: aiohttp.ClientSession, url: str, download: str) -> list[float]:
    times = []
    for _ in range(40):
        times.append(await timed(session, "GET", url + download, headers=BASIC))
        times.append(await timed(session, "GET", url + "/info"))
    return times


async def flood(url: str, download: str) -> dict[str, object]:
    unlimited = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession() as session, aiohttp.ClientSession(
            connector=unlimited) as attacker:
        idle = await latencies(session, url, download)

        async def wrong(i: int) -> int:
            async with attacker.post(url + "/webservice",
                                    data=login_body(f"user{i}", "guess")) as response:
                await response.read()
                return response.status

        flood_task = asyncio.gather(*(wrong(i) for i in range(600)))
        await asyncio.sleep(0.05)
        busy = await latencies(session, url, download)
        statuses = Counter(await flood_task)
    return {"idle_median_ms": statistics.median(idle), "idle_p95_ms": p95(idle),
            "flood_median_ms": statistics.median(busy), "flood_p95_ms": p95(busy),
            "flood_max_ms": max(busy),
            "flood_answers": dict(statuses)}


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18]


def prepare_export(server: Server) -> str:
    client = server.client()
    client.conn.request("GET", "/info")
    client.conn.getresponse().read()
    now_us = int(time.time()) * 1_000_000
    lo, hi = now_us - 40_000_000, now_us - 35_000_000
    body = export_body([(DEVICE, lo, hi)])
    client.conn.request("POST", "/command?command=exportVideo", body=body.encode(),
                        headers={"Content-Type": "text/xml", **BASIC})
    text = client.conn.getresponse().read().decode()
    export_id = int(text.split("<exportid>")[1].split("<")[0])
    for _ in range(600):
        client.conn.request("GET", f"/command?command=getExportVideoStatus&exportid={export_id}",
                            headers=BASIC)
        if "<status>COMPLETED</status>" in client.conn.getresponse().read().decode():
            break
        time.sleep(0.05)
    return f"/command?command=downloadExportVideo&exportid={export_id}&file=manifest.xml"


def main() -> int:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        loose = write_config(root, "max_failures_per_address_user = 100000\n"
                                   "max_failures_per_user = 100000\n"
                                   "max_failures_per_address = 100000")
        subprocess.run([sys.executable, "-m", "sense_plugin", "demo-archive", "--config",
                        str(loose), "--minutes", "1", "--size", "64x64"], check=True,
                       capture_output=True)
        with Server(loose, root / "data", name="bench-login") as server:
            url = f"http://127.0.0.1:{server.port}"
            download = prepare_export(server)
            times = asyncio.run(enumeration(url))
            lines.append(f"login, median of 200: unknown user {times['unknown_ms']:.1f} ms, "
                         f"wrong password {times['wrong_ms']:.1f} ms")
            figures = asyncio.run(flood(url, download))
            lines.append(f"download+/info idle: median {figures['idle_median_ms']:.1f} ms, p95 "
                         f"{figures['idle_p95_ms']:.1f} ms; during 600 parallel wrong logins: "
                         f"median {figures['flood_median_ms']:.1f} ms, p95 "
                         f"{figures['flood_p95_ms']:.1f} ms, max {figures['flood_max_ms']:.1f} ms;"
                         f" flood answers (HTTP status: count) {figures['flood_answers']}")
        (root / "strict").mkdir()
        strict = write_config(root / "strict", "")
        with Server(strict, root / "strict-data", name="bench-login-strict") as server:
            counts, last = asyncio.run(parallel_guesses(f"http://127.0.0.1:{server.port}"))
            lines.append(f"300 parallel wrong passwords, default limits: {dict(counts)}; "
                         f"the right password afterwards: {last}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
