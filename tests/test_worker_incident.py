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
from sense_plugin.media.cutspec import SourceRange, SourceSegment
from sense_plugin.media.exportoptions import ExportOptions
from sense_plugin.media.messages import CutJob


async def test_unexpected_failure_is_logged_with_an_incident_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proc = WorkerProcess(multiprocessing.get_context("forkserver"))
    source = SourceRange((SourceSegment(12345, 0, 10_000_000),),  # type: ignore[arg-type]
                         1_000_000, 2_000_000)
    payload = CutJob(source=source, fmt="mkv",
                     out_path=str(tmp_path / "out.mkv"), name="out.mkv", bandwidth_kbps=0,
                     device_id=1, title="Cam", comment="", options=ExportOptions())
    try:
        with caplog.at_level(logging.ERROR), pytest.raises(SenseError) as failure:
            await proc.run(payload, lambda *_: None)
    finally:
        proc.close()
    match = re.search(r"incident ([0-9a-f]{12})", failure.value.description)
    assert match, failure.value.description
    logged = [r.getMessage() for r in caplog.records if match.group(1) in r.getMessage()]
    assert logged and "Traceback" in logged[0]
