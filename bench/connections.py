"""``python -m bench.connections``: 1100 idle connections, ``serve`` at ``ulimit -n 1024``.

Half of the connections send nothing, half send an unfinished request head. Measured: the
server's open descriptors, ``/info`` + ``getDeviceList`` latency meanwhile (20 each), and the
bytes the server logs during the flood. Writes ``bench/results/connections.txt``.
"""

from __future__ import annotations

import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.archive import BENCH_DIR
from bench.server import free_port

RESULTS = BENCH_DIR / "results" / "connections.txt"
SERVER_FDS = 1024
CONNECTIONS = 1100


def start(config: Path, log: Path, port: int) -> subprocess.Popen[bytes]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (SERVER_FDS, SERVER_FDS))

    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sense_plugin", "serve", "--config",
                                 str(config), "--port", str(port)], stdout=out,
                                stderr=subprocess.STDOUT, preexec_fn=limit)
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/info", timeout=2).read()
            return proc
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not start; see {log}")


def main() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))  # for our client side
    with tempfile.TemporaryDirectory() as tmp:
        config, log = Path(tmp) / "sense.toml", Path(tmp) / "server.log"
        config.write_text('[server]\nserverid = "7015498111931795223"\ndata_dir = "data"\n'
                          '[archive]\ndemo = false\n')
        port = free_port()
        proc = start(config, log, port)
        before = log.stat().st_size
        sockets = []
        for i in range(CONNECTIONS):
            sockets.append(socket.create_connection(("127.0.0.1", port)))
            if i % 2:
                sockets[-1].sendall(b"GET /info HTTP/1.1\r\nHost: x\r\n")
        fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
        times = []
        for _ in range(20):
            for path in ("/info", "/command?command=getDeviceList"):
                started = time.perf_counter()
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10).read()
                times.append((time.perf_counter() - started) * 1000)
        logged = log.stat().st_size - before
        for sock in sockets:
            sock.close()
        proc.terminate()
        proc.wait(30)
    line = (f"{CONNECTIONS} idle connections, server ulimit -n {SERVER_FDS}: server holds {fds} "
            f"descriptors; /info + getDeviceList meanwhile median {statistics.median(times):.1f} "
            f"ms, max {max(times):.1f} ms; {logged} bytes logged during the flood")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(line + "\n")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
