"""``python -m bench.fairness [--tree DIR]``: how long another user's export waits while one
user holds the workers (docs/scheduling.rst).

Two scenarios on a real ``sense-plugin serve`` with authentication on, two workers and the
three live demo cameras (320x180, 10 fps), run from the source tree ``--tree`` (default this
one; ``git archive BASE | tar -x -C DIR`` gives another):

live hold
    alice starts two live exports without an end (``keepalive`` 0); bob then asks for 5 s of
    another camera from the archive. Seconds from bob's POST to SYNCING and to COMPLETED
    (``--timeout`` bounds the wait: "> N" means still waiting).
renders
    alice asks for four 20-s renders (the demo's 320x180, quality high), then bob for a 2-s
    stream copy; with two workers and with one. Seconds from bob's POST to COMPLETED, and how
    many of alice's renders had finished then.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from lxml import etree

from sense_plugin.passwords import hash_password
from sense_plugin.timestamps import format_timestamp, now_us

RESULTS = Path(__file__).resolve().parent / "results"
ENTRANCE, PARKING, LOBBY = "9890179877273119875", "9890179877273119876", "9890179877273119877"
PASSWORDS = {"alice": "alice-Pw-31", "bob": "bob-Pw-77"}
US = 1_000_000


def log(text: str) -> None:
    print(text, flush=True)


class Server:
    def __init__(self, tree: Path, work: Path, workers: int) -> None:
        users = "".join(f'[[auth.users]]\nname = "{n}"\npassword_hash = "{hash_password(p)}"\n'
                        'permissions = ["view", "export"]\n' for n, p in PASSWORDS.items())
        config = work / "sense.toml"
        config.write_text(f'[server]\nserverid = "7015498111931795223"\ndata_dir = "data"\n'
                          f"[auth]\nenabled = true\n{users}[archive]\ndemo = true\n"
                          f"demo_minutes = 1\n[export]\nmax_concurrent_jobs = {workers}\n")
        self.port = 18000 + os.getpid() % 1000
        env = {**os.environ, "PYTHONPATH": str(tree)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sense_plugin", "serve", "--config", str(config),
             "--port", str(self.port)], cwd=work, env=env,
            stdout=(work / "server.log").open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/info", timeout=2).read()
                break
            except OSError:
                assert time.monotonic() < deadline and self.proc.poll() is None, "no server"
                time.sleep(0.2)

    def send(self, user: str, query: str, body: str | None = None) -> etree._Element:
        token = base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/command?command={query}",
            data=None if body is None else body.encode(),
            headers={"Authorization": f"Basic {token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return etree.fromstring(response.read())

    def status(self, user: str, export_id: str) -> str:
        root = self.send(user, f"getExportVideoStatus&exportid={export_id}")
        return root.findtext("exports/export/status") or ""

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def body(device: str, start_us: int, end_us: int | None, extra: str = "") -> str:
    end = "" if end_us is None else f"<endtime>{format_timestamp(end_us)}</endtime>"
    return (f"<export><devices><device><deviceid>{device}</deviceid><starttime>"
            f"{format_timestamp(start_us)}</starttime>{end}</device></devices>{extra}</export>")


def wait(server: Server, user: str, export_id: str, statuses: set[str],
         timeout_s: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if server.status(user, export_id) in statuses:
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def live_hold(server: Server, timeout_s: float) -> dict[str, float | None]:
    for _ in range(2):
        server.send("alice", "exportVideo", body(ENTRANCE, now_us() - US, None,
                                                 "<mode>live</mode><keepalive>0</keepalive>"))
    time.sleep(1)
    other = server.send("bob", "exportVideo", body(PARKING, now_us() - 30 * US,
                                                   now_us() - 25 * US)).findtext("exportid")
    assert other
    started = time.monotonic()
    syncing = wait(server, "bob", other, {"SYNCING", "COMPLETED"}, timeout_s)
    left = timeout_s - (time.monotonic() - started)
    done = None if syncing is None else wait(server, "bob", other, {"COMPLETED"}, left)
    return {"to_syncing_s": syncing,
            "to_completed_s": None if done is None else time.monotonic() - started}


def renders(server: Server, timeout_s: float) -> dict[str, float | None]:
    render = "<render><quality>high</quality></render>"
    answers = [server.send("alice", "exportVideo", body(LOBBY, now_us() - (45 - n) * US,
                                                         now_us() - (25 - n) * US, render))
               for n in range(4)]
    ids = [a.findtext("exportid") or "" for a in answers]
    assert all(ids), etree.tostring(answers[0]).decode()
    other = server.send("bob", "exportVideo", body(PARKING, now_us() - 30 * US,
                                                   now_us() - 28 * US)).findtext("exportid")
    assert other
    done = wait(server, "bob", other, {"COMPLETED"}, timeout_s)
    finished = sum(server.status("alice", i) == "COMPLETED" for i in ids)
    return {"to_completed_s": done, "alice_renders_finished": float(finished)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fairness")
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--label", default="this tree")
    args = parser.parse_args(argv)
    results = {}
    for name, scenario, workers in (("live hold", live_hold, 2), ("renders", renders, 2),
                                    ("renders, one worker", renders, 1)):
        with tempfile.TemporaryDirectory() as work:
            server = Server(args.tree.resolve(), Path(work), workers)
            try:
                time.sleep(2)  # the backfilled minute is indexed
                results[name] = scenario(server, args.timeout)
            finally:
                server.close()
        log(f"{args.label}: {name}: {results[name]}")
    date = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "fairness.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    saved[args.label] = {"date": date, "timeout_s": args.timeout, "results": results}
    path.write_text(json.dumps(saved, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
