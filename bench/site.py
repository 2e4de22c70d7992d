"""``python3 -m bench.site``: exports on a site of three servers against one server alone.

One PostgreSQL (``sense_plugin.testing.postgres``) and real ``sense-plugin serve`` processes on
loopback, each with two cameras of its own (generated archives, 640x360, 25 fps, 2 Mbit/s,
1 s GOP, 10 s segments). Measured, and saved to ``bench/results/site.{json,txt}``:

- ``one server``: 30 exports of one server's cameras, created on that server, all at once:
  wall time from the first POST to the last COMPLETED; ``three servers``: 30 exports spread
  over the six cameras of three servers, each created on a server that holds none of its
  jobs: the same wall time, and the ratio (aggregate throughput);
- status by id from a server that owns none of the jobs, polled while those 30 exports run:
  p50/p99;
- POST to job start on a remote server (the job's ``started_us`` minus the export's
  ``created_us``, one export at a time on idle servers; same machine, same clock): p50/p99;
- 10,000 exports in PostgreSQL (copies of a real one): ``getExportVideoStatus`` paged
  (``limit=10``) and by id over HTTP, one client, 500 requests each: p50/p99.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
from lxml import etree

from bench.report import machine
from bench.timing import elapsed_ms, summary, timed_ms
from sense_plugin.archive import demo
from sense_plugin.testing.postgres import PgServer
from sense_plugin.testing.serverprocess import ServerProcess
from sense_plugin.testing.siteservers import SECRET
from sense_plugin.timestamps import format_timestamp, now_us

RESULTS = Path(__file__).resolve().parent / "results"
BASE_ID = 2001
SPAN_S = 60
EXPORT_S = 20
HISTORY = 10_000


class Client:
    """One keep-alive HTTP connection to a server."""

    def __init__(self, server: ServerProcess) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)

    def command(self, query: dict[str, Any], body: str | None = None) -> etree._Element:
        self.conn.request("POST" if body else "GET", "/command?" + urlencode(query), body=body)
        root = etree.fromstring(self.conn.getresponse().read())
        if root.get("errorcode") != "0":
            raise RuntimeError(etree.tostring(root)[:400])
        return root

    def create(self, device_id: int, start_us: int, end_us: int) -> str:
        body = (f"<export><devices><device><deviceid>{device_id}</deviceid><starttime>"
                f"{format_timestamp(start_us)}</starttime><endtime>{format_timestamp(end_us)}"
                "</endtime></device></devices></export>")
        return self.command({"command": "exportVideo"}, body).findtext("exportid") or ""

    def status(self, export_id: str) -> str:
        root = self.command({"command": "getExportVideoStatus", "exportid": export_id})
        return root.findtext("exports/export/status") or ""


def cameras(server_id: int) -> list[int]:
    return [server_id * 10 + n for n in range(2)]


def start_servers(root: Path, url: str, count: int, archives: dict[int, Path]
                  ) -> list[ServerProcess]:
    servers = []
    for i in range(count):
        server_id = BASE_ID + i
        config = root / f"server-{server_id}.toml"
        server = ServerProcess(config, root / f"server-{server_id}.log")
        lines = ["[server]", f'serverid = "{server_id}"', f'name = "Recorder {server_id}"',
                 f'data_dir = "{root / f"data-{server_id}"}"', "[archive]", "demo = false",
                 "[export]", "max_concurrent_jobs = 2", "max_queued_jobs = 10000",
                 "[cluster]", f'database_url = "{url}"', f'node_url = "{server.url}"',
                 f'site_secret = "{SECRET}"', "heartbeat_s = 1.0"]
        for camera in cameras(server_id):
            lines += ["[[devices]]", f'deviceid = "{camera}"', f'name = "Cam {camera}"',
                      f'archive_dir = "{archives[camera]}"']
        config.write_text("\n".join(lines) + "\n")
        server.start()
        servers.append(server)
    return servers


def wait_all(client: Client, export_ids: list[str], timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    waiting = list(export_ids)
    while waiting:
        waiting = [e for e in waiting if client.status(e) not in ("COMPLETED", "FAILED")]
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(waiting)} exports not finished")
        time.sleep(0.05)


def run_batch(servers: list[ServerProcess], start_us: int, remote: bool,
              elsewhere: list[str] | None = None) -> tuple[float, list[str]]:
    """30 exports (created elsewhere when ``remote``), all at once; wall time to the end.

    ``elsewhere`` gains, as they are created, the ids of the exports whose job runs on
    another server than the last one (which then answers status for jobs it does not hold).
    """
    clients = [Client(s) for s in servers]
    jobs = [(cameras(BASE_ID + i % len(servers))[i // len(servers) % 2], i)
            for i in range(30)]
    started = time.monotonic()
    ids = []
    for camera, i in jobs:
        holder = i % len(servers)
        creator = (holder + 1) % len(servers) if remote else holder
        offset = (i * 7 % (SPAN_S - EXPORT_S)) * 1_000_000
        ids.append(clients[creator].create(camera, start_us + offset,
                                           start_us + offset + EXPORT_S * 1_000_000))
        if elsewhere is not None and holder != len(servers) - 1:
            elsewhere.append(ids[-1])
    wait_all(clients[0], ids)
    return time.monotonic() - started, ids


def poll_status(server: ServerProcess, ids: list[str], stop: threading.Event,
                out: list[float]) -> None:
    client = Client(server)
    while not stop.is_set():
        for export_id in list(ids):
            out.append(elapsed_ms(functools.partial(client.status, export_id)))
        time.sleep(0.001)


def start_latency(servers: list[ServerProcess], url: str, start_us: int, rounds: int
                  ) -> list[float]:
    """POST on server 2 of an export of server 1's camera, one at a time."""
    creator = Client(servers[1])
    values = []
    for n in range(rounds):
        offset = (n % (SPAN_S - 2)) * 1_000_000
        export_id = creator.create(cameras(BASE_ID)[0], start_us + offset,
                                   start_us + offset + 1_000_000)
        wait_all(creator, [export_id])
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT j.started_us - e.created_us FROM sense_jobs j JOIN sense_exports e "
                "USING (export_id) WHERE export_id = %s", (int(export_id),)).fetchone()
        assert row is not None
        values.append(int(row[0]) / 1000)
    return values


def fill_history(url: str, template_id: int) -> None:
    """``HISTORY`` copies of export ``template_id`` in sense_exports / sense_jobs."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("""
        WITH ids AS (SELECT nextval('sense_export_id_seq') AS id FROM generate_series(1, %s)),
        ins AS (INSERT INTO sense_exports (export_id, owner, created_us, path, out_base, format,
                    name, bandwidth_limit_kbps, retried_from, finished_us, expires_us, options,
                    status, finisher)
                SELECT ids.id, e.owner, e.created_us, e.path, e.out_base, e.format, e.name,
                    e.bandwidth_limit_kbps, NULL, e.finished_us, e.expires_us, e.options,
                    e.status, e.finisher
                FROM ids, sense_exports e WHERE e.export_id = %s RETURNING export_id)
        INSERT INTO sense_jobs (export_id, idx, server_id, device_id, device_name, start_us,
                end_us, status, progress, bytes_written, bandwidth_kbps, errorcode,
                description, started_us, finished_us, file, stopped)
        SELECT ins.export_id, j.idx, j.server_id, j.device_id, j.device_name, j.start_us,
               j.end_us, j.status, j.progress, j.bytes_written, j.bandwidth_kbps, j.errorcode,
               j.description, j.started_us, j.finished_us, j.file, j.stopped
        FROM ins, sense_jobs j WHERE j.export_id = %s""", (HISTORY, template_id, template_id))
        conn.execute("ANALYZE")


def timed(client: Client, query: dict[str, Any], count: int) -> dict[str, float]:
    return summary(timed_ms(lambda: client.command(query), count))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.site")
    parser.add_argument("--start-rounds", type=int, default=30)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="sense-bench-site-"))
    pg_root = Path(tempfile.mkdtemp(prefix="sense-pg-"))
    pg = PgServer(pg_root)
    pg.create()
    result: dict[str, Any] = {"machine": machine()}
    servers: list[ServerProcess] = []
    try:
        end_us = (now_us() // 1_000_000 - 120) * 1_000_000
        start_us = end_us - SPAN_S * 1_000_000
        archives = {}
        for i in range(3):
            for camera in cameras(BASE_ID + i):
                archives[camera] = root / f"archive-{camera}"
                demo.generate_device(archives[camera], name=f"Cam {camera}", start_us=start_us,
                                     end_us=end_us, segment_s=10, width=640, height=360,
                                     fps=25, gop_frames=25, bitrate_bps=2_000_000)
        servers = start_servers(root, pg.url, 3, archives)
        alone, _ids = run_batch(servers[:1], start_us, remote=False)
        polled: list[float] = []
        elsewhere: list[str] = []
        stop = threading.Event()
        poller = threading.Thread(target=poll_status, args=(servers[2], elsewhere, stop,
                                                            polled))
        poller.start()
        try:
            spread, ids = run_batch(servers, start_us, remote=True, elsewhere=elsewhere)
        finally:
            stop.set()
            poller.join()
        result["throughput"] = {
            "exports": 30, "export_s": EXPORT_S, "one_server_wall_s": round(alone, 2),
            "three_servers_wall_s": round(spread, 2), "speedup": round(alone / spread, 2)}
        result["remote_status_by_id"] = summary(polled)
        result["post_to_remote_start"] = summary(start_latency(servers, pg.url, start_us,
                                                               args.start_rounds))
        fill_history(pg.url, int(ids[0]))
        client = Client(servers[2])
        newest = client.command({"command": "getExportVideoStatus", "limit": 1})
        some_id = newest.findtext("exports/export/exportid") or ids[0]
        result["history"] = {
            "exports": HISTORY,
            "paged_limit10": timed(client, {"command": "getExportVideoStatus", "limit": 10},
                                   500),
            "paged_limit10_offset5000": timed(client, {"command": "getExportVideoStatus",
                                                       "limit": 10, "offset": 5000}, 500),
            "by_id": timed(client, {"command": "getExportVideoStatus", "exportid": some_id},
                           500)}
    finally:
        for server in servers:
            if server.proc is not None and server.proc.poll() is None:
                server.stop()
        pg.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(pg_root, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "site.json").write_text(json.dumps(result, indent=1) + "\n")
    text = render(result)
    (RESULTS / "site.txt").write_text(text)
    print(text, end="")
    return 0


def render(result: dict[str, Any]) -> str:
    t = result["throughput"]
    lines = ["site: 3 servers on one PostgreSQL (loopback, 2 cores shared by all)",
             f"  30 exports of {t['export_s']} s: one server {t['one_server_wall_s']} s, "
             f"three servers {t['three_servers_wall_s']} s (x{t['speedup']})"]
    for label, key in (("status by id, remote jobs", "remote_status_by_id"),
                       ("POST -> start on another server", "post_to_remote_start")):
        s = result[key]
        lines.append(f"  {label:34} n={s['n']:4}  p50 {s['p50_ms']:7.2f} ms  "
                     f"p99 {s['p99_ms']:7.2f} ms")
    for key, s in result["history"].items():
        if isinstance(s, dict):
            lines.append(f"  {HISTORY} in PostgreSQL, {key:27} p50 {s['p50_ms']:7.2f} ms  "
                         f"p99 {s['p99_ms']:7.2f} ms")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
