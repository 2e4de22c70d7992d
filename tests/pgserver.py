"""PostgreSQL fixtures: ``pg_server`` (a server per test) and ``pg_module_server`` (one per
module; ``create_database`` gives each test a fresh database on it).

Import the fixture into the test module. The server is ``sense_plugin.testing.postgres``'s
(``running_pg()`` where a fixture cannot be used); all skip with a one-line hint when
PostgreSQL is missing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sense_plugin.testing.postgres import PgServer, running_pg


@pytest.fixture
def pg_server() -> Iterator[PgServer]:
    """A fresh PostgreSQL server for one test."""
    with running_pg() as server:
        yield server


@pytest.fixture(scope="module")
def pg_module_server() -> Iterator[PgServer]:
    """One PostgreSQL server for a test module (``create_database`` for a test's own)."""
    with running_pg() as server:
        yield server
