"""The write rate a running job reports is measured on the worker's own stamps.

The worker stamps each progress message with its ``time.monotonic()`` (one clock for every
process of the host); the server's tracker (export/runner.py) takes the rate over the last
second of those stamps, so messages that a busy event loop reads late, and then bunched with
prompt ones, cannot show a rate above the one the worker wrote at.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.unit.fakeworker import Lab

#: The worker's true write rate in the scenario: 400 kbit/s, bytes per second.
RATE_BYTES_PER_S = 50_000


@pytest.fixture
async def lab(tmp_path: Path) -> Lab:
    lab = await Lab(tmp_path).start()
    yield lab  # type: ignore[misc]
    await lab.close()


async def test_a_message_read_late_does_not_raise_the_rate_above_the_stamped_one(
        lab: Lab) -> None:
    export = await lab.export()
    job = export.jobs[0]
    worker = await lab.cutting(job)
    first_sent_s = time.monotonic()
    first_bytes = 12_500
    await asyncio.sleep(0.25)  # the event loop was busy: the message is read a while later
    worker.progress(1_000_000, first_bytes, sent_s=first_sent_s)
    # a second on, the next message comes straight through, after a steady 400 kbit/s
    await asyncio.sleep(1.0)
    sent_s = time.monotonic()
    size_bytes = first_bytes + int((sent_s - first_sent_s) * RATE_BYTES_PER_S)
    worker.progress(2_000_000, size_bytes, sent_s=sent_s)
    # timed on arrival the window would span 1.0 s instead of 1.25 s: 500 kbit/s
    assert 399 <= job.bandwidth_kbps <= 400, job.bandwidth_kbps
    worker.complete()
    await lab.jobs.until_settled(job)

