"""The throwaway PostgreSQL (sense_plugin.testing.postgres, fixtures in tests/pgserver.py):
a real server that survives a crash."""

from __future__ import annotations

import pytest

from sense_plugin.testing.postgres import PgServer
from tests.pgserver import pg_server  # noqa: F401  (the fixture)

psycopg = pytest.importorskip("psycopg", reason="needs psycopg (the test extra installs it)")


def test_server_runs_unprivileged_and_recovers_after_a_crash(pg_server: PgServer) -> None:  # noqa: F811
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("sense",)
        conn.execute("CREATE TABLE t (n int)")
        conn.execute("INSERT INTO t VALUES (1), (2)")
    pg_server.kill()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg_server.url, connect_timeout=2)
    pg_server.start()
    with psycopg.connect(pg_server.url) as conn:
        assert conn.execute("SELECT sum(n) FROM t").fetchone() == (3,)
    with pytest.raises(psycopg.OperationalError):  # passwords are checked on TCP
        psycopg.connect(pg_server.url.replace("sense:sense@", "sense:wrong@"))
