"""The site database: versioned migrations, ``db upgrade``, signed ``/cluster/ping``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from sense_plugin.testing.postgres import PgServer
from sense_plugin.testing.siteservers import SECRET
from tests.pgserver import pg_server  # noqa: F401  (the fixture)

psycopg = pytest.importorskip("psycopg", reason="needs psycopg (the cluster extra)")
pytest.importorskip("procrastinate", reason="needs procrastinate (the cluster extra)")

from sense_plugin.api.app import create_app  # noqa: E402
from sense_plugin.cluster.schema import LATEST, MIGRATIONS  # noqa: E402

APPLIED = ", ".join(str(m.version) for m in MIGRATIONS)
from sense_plugin.cluster.signing import HEADER, sign  # noqa: E402
from sense_plugin.config import Config, config_from_dict  # noqa: E402


def db_upgrade(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sense_plugin", "db", "upgrade", "--config",
                           str(config)], capture_output=True, text=True, timeout=60)


def write_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(f'[server]\nserverid = "7"\ndata_dir = "{tmp_path}"\n[archive]\ndemo = false\n'
                    f'[cluster]\ndatabase_url = "{url}"\nnode_url = "http://127.0.0.1:1"\n'
                    f'site_secret = "{SECRET}"\n')
    return path


def test_db_upgrade_is_versioned_idempotent_and_refuses_newer(
        pg_server: PgServer, tmp_path: Path) -> None:  # noqa: F811
    config = write_config(tmp_path, pg_server.url)
    first = db_upgrade(config)
    assert first.returncode == 0, first.stderr
    assert f"applied migration(s) {APPLIED}; schema version {LATEST}" in first.stdout
    assert "sense:***@" in first.stdout and ":sense@" not in first.stdout  # no password
    again = db_upgrade(config)
    assert again.returncode == 0
    assert f"schema is up to date (version {LATEST} of {LATEST})" in again.stdout
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        rows = conn.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
        assert rows == [(m.version,) for m in MIGRATIONS]
        for table in ("sense_nodes", "sense_node_devices", "procrastinate_jobs",
                      "procrastinate_workers", "sense_exports", "sense_jobs"):
            assert conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() != (None,)
        conn.execute("INSERT INTO schema_version (version, description) VALUES (99, 'future')")
    newer = db_upgrade(config)
    assert newer.returncode == 2
    assert f"schema is version 99, newer than this sense_plugin knows ({LATEST})" in newer.stderr


def test_servers_upgrading_at_once_apply_each_migration_once(
        pg_server: PgServer, tmp_path: Path) -> None:  # noqa: F811
    config = write_config(tmp_path, pg_server.url)
    runs = [subprocess.Popen([sys.executable, "-m", "sense_plugin", "db", "upgrade",
                              "--config", str(config)], stdout=subprocess.PIPE, text=True)
            for _ in range(3)]
    outputs = [run.communicate(timeout=60)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0]
    assert sum(f"applied migration(s) {APPLIED}" in out for out in outputs) == 1, outputs
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM schema_version").fetchone() == (len(MIGRATIONS),)


def test_serve_without_its_database_exits_2(pg_server: PgServer, tmp_path: Path) -> None:  # noqa: F811
    config = write_config(tmp_path, pg_server.url)
    pg_server.stop()
    run = subprocess.run([sys.executable, "-m", "sense_plugin", "serve", "--config",
                          str(config), "--port", "0"], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "configuration error" in run.stderr
    assert "[cluster] database_url: cannot use postgresql://sense:***@127.0.0.1" in run.stderr


def test_db_upgrade_errors_are_clear(pg_server: PgServer, tmp_path: Path) -> None:  # noqa: F811
    unreachable = db_upgrade(write_config(tmp_path, pg_server.url.replace("sense:sense@",
                                                                          "sense:wrong@")))
    assert unreachable.returncode == 2
    assert "[cluster] database_url: cannot use postgresql://sense:***@" in unreachable.stderr
    plain = tmp_path / "plain.toml"
    plain.write_text('[server]\nserverid = "7"\n')
    missing = db_upgrade(plain)
    assert missing.returncode == 2 and "[cluster]: missing" in missing.stderr


def site_config(tmp_path: Path, url: str) -> Config:
    data = {"server": {"serverid": "7", "data_dir": str(tmp_path)}, "archive": {"demo": False},
            "devices": [{"deviceid": "701", "name": "Gate"}],
            "cluster": {"database_url": url, "node_url": "http://127.0.0.1:1",
                        "site_secret": SECRET, "heartbeat_s": 0.2, "node_timeout_s": 60}}
    return config_from_dict(data, base_dir=tmp_path)


async def test_ping_needs_a_valid_proof(
        pg_server: PgServer, tmp_path: Path, aiohttp_client: Any) -> None:  # noqa: F811
    client = await aiohttp_client(create_app(site_config(tmp_path, pg_server.url)))
    host = "127.0.0.1:1"  # a proof names the server it is for: its configured node_url

    async def ping(proof: str | None) -> tuple[int, etree._Element]:
        headers = {} if proof is None else {HEADER: proof}
        response = await client.get("/cluster/ping", headers=headers)
        return response.status, etree.fromstring(await response.read())

    good = sign(SECRET, "GET", host, "/cluster/ping")
    status, doc = await ping(good)
    assert status == 200 and doc.findtext("pong/serverid") == "7"
    for proof, reason in [(None, "missing X-Sense-Proof"),
                          (good, "replayed nonce"),
                          (sign("x" * 32, "GET", host, "/cluster/ping"), "wrong proof"),
                          (sign(SECRET, "GET", host, "/cluster/other"), "wrong proof"),
                          (sign(SECRET, "GET", host, "/cluster/ping", now=1e9), "s off"),
                          (sign(SECRET, "GET", f"{client.server.host}:{client.server.port}",
                                "/cluster/ping"), "wrong proof")]:
        status, doc = await ping(proof)
        assert status == 401, reason
        assert doc.get("errorcode") != "0" and reason in (doc.findtext("description") or "")
    # The ordinary commands are not behind the proof; the site lists come from PostgreSQL.
    response = await client.get("/command?command=getDivaList")
    doc = etree.fromstring(await response.read())
    assert [d.findtext("status") for d in doc.iter("diva")] == ["online"]
    response = await client.get("/command?command=getDeviceList&serverid=8")
    assert etree.fromstring(await response.read()).get("errorcode") == "-17"
