"""An unexpected failure inside an export worker: logged with its traceback under an incident
id that the job's description repeats (a real worker process, a real bug in the input)."""

from __future__ import annotations

import logging
import multiprocessing
import re
from pathlib import Path

import pytest

from sense_plugin.errors import SenseError
from sense_plugin.export.pool import WorkerProcess


async def test_unexpected_failure_is_logged_with_an_incident_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proc = WorkerProcess(multiprocessing.get_context("forkserver"))
    payload = {"segments": [{"path": 12345, "start_us": 0, "end_us": 10_000_000}],
               "start_us": 1_000_000, "end_us": 2_000_000, "fmt": "mkv",
               "out_path": str(tmp_path / "out.mkv")}
    try:
        with caplog.at_level(logging.ERROR), pytest.raises(SenseError) as failure:
            await proc.run(payload, lambda *_: None)
    finally:
        proc.close()
    match = re.search(r"incident ([0-9a-f]{12})", failure.value.description)
    assert match, failure.value.description
    logged = [r.getMessage() for r in caplog.records if match.group(1) in r.getMessage()]
    assert logged and "Traceback" in logged[0]
