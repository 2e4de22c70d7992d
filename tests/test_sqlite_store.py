"""The JobStore contract (``tests/store_contract.py``) on the single server's SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sense_plugin.config import config_from_dict
from sense_plugin.export.localstore import LocalJobStore
from tests.store_contract import *  # noqa: F403  (the contract's tests)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalJobStore]:
    """The contract's ``store``: an opened LocalJobStore in an empty data directory."""
    config = config_from_dict({"server": {"serverid": "1", "data_dir": str(tmp_path / "data")},
                               "archive": {"demo": False}}, base_dir=tmp_path)
    opened = LocalJobStore(config)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
