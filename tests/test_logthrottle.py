"""Repeated log lines once per interval: the logging filter and the loop's handler."""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Iterator

import pytest

from sense_plugin.api import logthrottle


@pytest.fixture
def gated(caplog: pytest.LogCaptureFixture) -> Iterator[logging.Logger]:
    logger = logging.getLogger("aiohttp.server")
    old = list(logger.filters)
    logger.filters = [logthrottle.RepeatFilter(logthrottle.RepeatGate(interval_s=0.3))]
    caplog.set_level(logging.INFO)
    yield logger
    logger.filters = old


def reset(logger: logging.Logger, address: str) -> None:
    try:
        raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
    except ConnectionResetError:
        logger.exception("Error handling request from %s", address)


def test_a_flood_of_one_error_is_one_line_per_interval(gated: logging.Logger,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    for i in range(1000):
        reset(gated, f"127.0.0.{i % 250}")
    gated.warning("something else")  # another kind of line is not held back
    assert [r.getMessage() for r in caplog.records] == [
        "Error handling request from 127.0.0.0", "something else"]
    time.sleep(0.35)
    reset(gated, "10.0.0.1")
    assert caplog.records[-1].getMessage() == (
        "Error handling request from 10.0.0.1 [999 more like this in the last 0.3 s]")


async def test_loop_exception_handler_keeps_out_of_descriptor_floods_small(
        caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    logthrottle.install(loop, interval_s=60)
    caplog.set_level(logging.INFO)
    try:
        for _ in range(5000):
            loop.call_exception_handler({
                "message": "socket.accept() out of system resource",
                "exception": OSError(errno.EMFILE, "Too many open files")})
    finally:
        loop.set_exception_handler(previous)
        for name in logthrottle.NOISY_LOGGERS:
            logging.getLogger(name).filters = [
                f for f in logging.getLogger(name).filters
                if not isinstance(f, logthrottle.RepeatFilter)]
    lines = [r for r in caplog.records if "out of system resource" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None  # one line, no traceback
    assert "[Errno 24] Too many open files" in lines[0].getMessage()
