"""CPU cost of the live demo: ``python -m bench.democpu [--seconds 60]``.

Starts ``sense-plugin serve`` on a fresh data directory with ``demo = true`` and no devices
(three live demo cameras), waits for the back-fill and the first live segments, then reads the
CPU ticks of the server and of the synthetic source process from ``/proc`` over the window.
Prints percent of one core and saves ``bench/results/democpu.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from sense_plugin.demo_defaults import DEMO_DEVICES, FPS, size_text

RESULTS = Path(__file__).resolve().parent / "results" / "democpu.json"
CONFIG = """[server]
serverid = "7015498111931795223"
data_dir = "data"
[archive]
demo = true
demo_minutes = 1
"""


def ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, log: Path, timeout_s: float = 60) -> int:
    """The synthetic source's pid once the server answers and has logged it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = re.search(r"synthetic source \(pid (\d+)", log.read_text())
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/info", timeout=2).read()
            if found:
                return int(found.group(1))
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server not ready:\n{log.read_text()}")


def measure(seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="democpu-") as tmp:
        config, log = Path(tmp) / "demo.toml", Path(tmp) / "server.log"
        config.write_text(CONFIG)
        port = free_port()
        with log.open("wb") as out:
            server = subprocess.Popen(
                [sys.executable, "-m", "sense_plugin", "serve", "--config", str(config),
                 "--port", str(port)], stdout=out, stderr=subprocess.STDOUT)
        try:
            source = wait_ready(port, log)
            time.sleep(15)  # back-fill done, recorders connected, first segments closed
            hz = os.sysconf("SC_CLK_TCK")
            began, server0, source0 = time.monotonic(), ticks(server.pid), ticks(source)
            time.sleep(seconds)
            wall = time.monotonic() - began
            server_pct = (ticks(server.pid) - server0) / hz / wall * 100
            source_pct = (ticks(source) - source0) / hz / wall * 100
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
    return {"window_s": round(wall, 1), "cameras": 3, "server_pct_of_core": round(server_pct, 2),
            "source_pct_of_core": round(source_pct, 2),
            "total_pct_of_core": round(server_pct + source_pct, 2),
            "load_average": round(os.getloadavg()[0], 2)}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.democpu")
    parser.add_argument("--seconds", type=float, default=60)
    result = measure(parser.parse_args().seconds)
    print(f"live demo, {len(DEMO_DEVICES)} cameras {size_text()} {FPS} fps, "
          f"{result['window_s']} s: synthetic source "
          f"{result['source_pct_of_core']}% of a core, server (3 recorders) "
          f"{result['server_pct_of_core']}%, total {result['total_pct_of_core']}% "
          f"(load average {result['load_average']})")
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
