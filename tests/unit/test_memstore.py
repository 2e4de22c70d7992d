"""The JobStore contract (``tests/store_contract.py``) on the unit tests' in-memory store, so
the lifecycle's unit tests run against a store that behaves like the real ones."""

from __future__ import annotations

import pytest

from tests.store_contract import *  # noqa: F403  (the contract's tests)
from tests.unit.memstore import MemoryJobStore


@pytest.fixture
async def store() -> MemoryJobStore:
    opened = MemoryJobStore()
    await opened.open()
    return opened
