"""``python -m bench.login_evict [--tree DIR]``: can a flood of new user names push a locked-out
victim's failures out of the login counters? A real ``sense-plugin serve`` (auth on, default
limits) run from ``--tree`` (default: this checkout; ``--tree /path/to/main`` for the code
before). Ten wrong passwords lock alice out; then 60,000 logins with new names arrive, 64 at
a time (most answered 503 without a hash); then alice's right password is sent.

Appends one line to bench/results/login-evict.txt. No test asserts on these numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

from bench.server import free_port
from sense_plugin.passwords import hash_password

RESULTS = Path(__file__).resolve().parent / "results" / "login-evict.txt"
PASSWORD = "alice-Pw-7f3a"
FLOOD = 60_000
PARALLEL = 64


def body(user: str, password: str) -> bytes:
    return (f"<AuthenticateUser><username>{user}</username><password>{password}</password>"
            "</AuthenticateUser>").encode()


async def outcome(session: aiohttp.ClientSession, url: str, user: str, password: str) -> str:
    async with session.post(url + "/webservice", data=body(user, password)) as response:
        text = await response.text()
    if 'errorcode="0"' in text:
        return "accepted"
    if "too many" in text or response.status == 503:
        return f"refused {response.status}"
    return "wrong"


async def attack(url: str) -> tuple[str, Counter[str], float, str]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=PARALLEL)) as session:
        for _ in range(600):
            try:
                async with session.get(url + "/info"):
                    break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        for i in range(10):
            await outcome(session, url, "alice", f"wrong-{i}")
        before = await outcome(session, url, "alice", PASSWORD)
        began = time.monotonic()
        counts: Counter[str] = Counter()
        names = iter(range(FLOOD))

        async def sender() -> None:
            for n in names:
                counts[await outcome(session, url, f"user{n}", "guess")] += 1

        await asyncio.gather(*(sender() for _ in range(PARALLEL)))
        elapsed_s = time.monotonic() - began
        after = await outcome(session, url, "alice", PASSWORD)
    return before, counts, elapsed_s, after


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    tree = args.tree.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "sense.toml"
        config.write_text(f"""[server]
serverid = "7015498111931795223"
data_dir = "data"
[archive]
demo = false
[[devices]]
deviceid = "9890179877273119875"
name = "Entrance"
[auth]
enabled = true
[[auth.users]]
name = "alice"
password_hash = "{hash_password(PASSWORD)}"
permissions = ["view"]
""")
        port = free_port()
        with (Path(tmp) / "server.log").open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "sense_plugin", "serve", "--config", str(config),
                 "--port", str(port)], cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
                stdout=log, stderr=subprocess.STDOUT)
        try:
            before, counts, elapsed_s, after = asyncio.run(attack(f"http://127.0.0.1:{port}"))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    line = (f"{args.label or tree}: right password after 10 failures: {before}; {FLOOD} new "
            f"names in {elapsed_s:.1f} s: {dict(counts)}; then the right password: {after}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as out:
        out.write(line + "\n")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
