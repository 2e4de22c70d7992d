"""``python -m bench.login_evict [--tree DIR]``: can a flood of new user names push a locked-out
victim's failures out of the login counters? A real ``sense-plugin serve`` (auth on, default
limits) run from ``--tree`` (default: this checkout; ``--tree /path/to/main`` for the code
before). Ten wrong passwords lock alice out; then 60,000 logins with new names arrive, 64 at
a time (most answered 503 without a hash); then alice's right password is sent.

Appends one line to bench/results/login-evict.txt. No test asserts on these numbers.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

from bench.treeserve import append_result, tree_arguments, write_auth_config
from sense_plugin.testing.serverprocess import ServerProcess

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
    args = tree_arguments(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        config = write_auth_config(Path(tmp), {"alice": (PASSWORD, ["view"])})
        server = ServerProcess(config, Path(tmp) / "server.log", tree=args.tree)
        try:
            server.start()
            before, counts, elapsed_s, after = asyncio.run(attack(server.url))
        finally:
            if server.proc is not None:
                server.stop(timeout_s=30)
    append_result(RESULTS, f"{args.label}: right password after 10 failures: {before}; "
                  f"{FLOOD} new names in {elapsed_s:.1f} s: {dict(counts)}; then the right "
                  f"password: {after}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
