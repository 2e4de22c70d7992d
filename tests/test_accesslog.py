"""The access log: one INFO line per request, except successful polls (DEBUG, counted into at
most one INFO summary line per interval), with a fake clock for the interval."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from apiclient import command

from sense_plugin.api import accesslog
from sense_plugin.api.accesslog import PollSummary


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def test_the_summary_counts_polls_and_comes_once_per_interval() -> None:
    clock = FakeClock()
    summary = PollSummary(interval_s=60, clock=clock)
    lines = []
    for tick in range(360):  # three minutes of two polls a second, of two kinds
        clock.now_s = 1000.0 + (tick + 1) / 2
        text = summary.count(("getExportVideoStatus", "getRecordings")[tick % 2])
        if text is not None:
            lines.append(text)
    assert lines == ["120 polls in the last 60 s (getExportVideoStatus 60, getRecordings 60)"] * 3


@pytest.fixture
def quick_summary(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    clock = FakeClock()
    monkeypatch.setattr(accesslog, "POLL_SUMMARY", PollSummary(interval_s=60, clock=clock))
    return clock


async def test_a_minute_of_status_polls_is_one_info_line(
        make_client: Callable[..., Any], make_config: Callable[..., Any],
        quick_summary: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    """What a tab following one unfinished export asks in a minute (one status a second, the
    recordings of a camera every 10 s) leaves one INFO line; the other commands keep theirs."""
    client = await make_client(make_config())
    with caplog.at_level(logging.DEBUG, logger="sense_plugin.access"):
        for second in range(60):
            quick_summary.now_s += 1
            await command(client, "getExportVideoStatus", limit=11)
            if second % 10 == 0:
                await command(client, "getRecordings", deviceid=9890179877273119875,
                              starttime="2026-01-01 00:00:00", endtime="2026-01-01 01:00:00")
        await command(client, "getExportVideoStatus", expect=-57, exportid="x")
        await command(client, "getDeviceList")
    records = [r for r in caplog.records if r.name == "sense_plugin.access"]
    info = [r.getMessage() for r in records if r.levelno == logging.INFO]
    assert len(info) == 3, info
    assert info[0] == "66 polls in the last 60 s (getExportVideoStatus 60, getRecordings 6)"
    assert "errorcode=-57" in info[1] and "getDeviceList" in info[2]
    assert sum(r.levelno == logging.DEBUG for r in records) == 66
