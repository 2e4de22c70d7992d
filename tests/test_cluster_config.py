"""``[cluster]`` (docs/site.rst): validated at start, and absent means nothing changes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sense_plugin.cluster.signing import MAX_SKEW_S, ProofError, Verifier, sign
from sense_plugin.config import config_from_dict
from sense_plugin.errors import ConfigError

GOOD = {"database_url": "postgresql://sense:pw@db.local:5432/sense",
        "node_url": "http://10.0.0.5:8080", "site_secret": "s" * 32}


def load(tmp_path: Path, **cluster: Any) -> Any:
    data = {"server": {"serverid": "7", "data_dir": str(tmp_path)}, "cluster": cluster}
    return config_from_dict(data, base_dir=tmp_path)


def test_defaults_and_values(tmp_path: Path) -> None:
    cluster = load(tmp_path, **GOOD).cluster
    assert (cluster.heartbeat_s, cluster.node_timeout_s) == (5.0, 600.0)
    assert cluster.node_url == "http://10.0.0.5:8080"
    assert config_from_dict({"server": {"serverid": "7"}}, base_dir=tmp_path).cluster is None
    assert cluster.shared_export_root is False
    shared = config_from_dict({"server": {"serverid": "7", "export_roots": ["/mnt/exports"]},
                               "cluster": {**GOOD, "shared_export_root": True}},
                              base_dir=tmp_path).cluster
    assert shared is not None and shared.shared_export_root is True


@pytest.mark.parametrize(("change", "message"), [
    ({"database_url": None}, "[cluster]: missing key 'database_url'"),
    ({"node_url": None}, "[cluster]: missing key 'node_url'"),
    ({"site_secret": None}, "[cluster]: missing key 'site_secret'"),
    ({"database_url": "mysql://x"}, "[cluster] database_url: expected a postgresql://"),
    ({"node_url": "10.0.0.5:8080"}, "[cluster] node_url: expected http(s)://host:port"),
    ({"site_secret": "short"}, "[cluster] site_secret: must be at least 16 characters"),
    ({"heartbeat_s": 0}, "[cluster] heartbeat_s: 0.0 is outside"),
    ({"heartbeat_s": 5, "node_timeout_s": 10}, "[cluster] node_timeout_s: 10 is below three"),
    ({"heartbeat": 5}, "[cluster]: unknown key 'heartbeat'"),
    ({"shared_export_root": "yes"}, "[cluster] shared_export_root: expected bool"),
    ({"shared_export_root": True}, "[cluster] shared_export_root: needs [server] export_roots"),
])
def test_bad_values_name_the_key(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    values = {**GOOD, **change}
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, **{k: v for k, v in values.items() if v is not None})
    assert message in str(caught.value)


def test_serve_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[server]\nserverid = "7"\n[cluster]\ndatabase_url = "x"\n')
    run = subprocess.run([sys.executable, "-m", "sense_plugin", "serve", "--config",
                          str(config)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "configuration error" in run.stderr and "[cluster]: missing key" in run.stderr


def test_without_cluster_no_postgresql_library_is_loaded(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from sense_plugin.config import "
            "config_from_dict; from sense_plugin.api.app import create_app; "
            f"c = config_from_dict({{'server': {{'serverid': '7', "
            f"'data_dir': {str(tmp_path)!r}}}}}, base_dir=Path('.')); create_app(c); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('psycopg', 'psycopg_pool', "
            "'procrastinate')]; print(bad); assert not bad")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def test_proof_checks_every_signed_part() -> None:
    secret = "k" * 32
    proof = sign(secret, "GET", "127.0.0.1:1", "/cluster/ping?a=1", b"body")
    Verifier(secret).verify(proof, "GET", "127.0.0.1:1", "/cluster/ping?a=1", b"body")
    changed = [("POST", "127.0.0.1:1", "/cluster/ping?a=1", b"body"),
               ("GET", "127.0.0.1:2", "/cluster/ping?a=1", b"body"),
               ("GET", "127.0.0.1:1", "/cluster/ping?a=2", b"body"),
               ("GET", "127.0.0.1:1", "/cluster/ping?a=1", b"bodY")]
    for method, host, path, body in changed:
        with pytest.raises(ProofError, match="wrong proof"):
            Verifier(secret).verify(proof, method, host, path, body)
    with pytest.raises(ProofError, match="wrong proof"):
        Verifier("x" * 32).verify(proof, "GET", "127.0.0.1:1", "/cluster/ping?a=1", b"body")
    verifier = Verifier(secret)
    verifier.verify(proof, "GET", "127.0.0.1:1", "/cluster/ping?a=1", b"body")
    with pytest.raises(ProofError, match="replayed"):
        verifier.verify(proof, "GET", "127.0.0.1:1", "/cluster/ping?a=1", b"body")
    old = sign(secret, "GET", "h", "/", now=1_000_000.0)
    with pytest.raises(ProofError, match="s off"):
        Verifier(secret).verify(old, "GET", "h", "/", b"", now=1_000_000.0 + MAX_SKEW_S + 1)
    with pytest.raises(ProofError, match="missing"):
        Verifier(secret).verify(None, "GET", "h", "/", b"")
    with pytest.raises(ProofError, match="malformed"):
        Verifier(secret).verify("v1;ts=1;sig=00", "GET", "h", "/", b"")
