"""Repeated log lines once per interval: a flood of identical errors must not fill the disk.

Accept errors (``Errno 24``), client disconnects and malformed requests can come thousands of
times a second; each is logged the first time, then at most once per ``interval_s`` with the
count of the ones left out. The event loop's exception handler goes through the same gate and
keeps tracebacks only for the first of a kind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

INTERVAL_S = 60.0
#: The loggers whose repeats are gated (never the export event log: each of those lines counts).
NOISY_LOGGERS = ("asyncio", "aiohttp.server", "aiohttp.web", "aiohttp.access",
                 "sense_plugin.api.connections")
#: Where the gated loop exception handler writes (not itself gated again).
log = logging.getLogger("sense_plugin.api.loop")


class RepeatGate:
    """Passes the first line of a kind, then one per interval with the count left out."""

    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._seen: dict[tuple[str, ...], tuple[float, int]] = {}

    def admit(self, key: tuple[str, ...]) -> int | None:
        """None to drop this occurrence, else how many were dropped since the last one."""
        now = time.monotonic()
        last, dropped = self._seen.get(key, (float("-inf"), 0))
        if now - last < self.interval_s:
            self._seen[key] = (last, dropped + 1)
            return None
        if len(self._seen) > 1000:
            self._seen.clear()
        self._seen[key] = (now, 0)
        return dropped


class RepeatFilter(logging.Filter):
    """A logging filter around :class:`RepeatGate`, keyed by logger, level, text and exception."""

    def __init__(self, gate: RepeatGate) -> None:
        super().__init__()
        self._gate = gate

    def filter(self, record: logging.LogRecord) -> bool:
        exc_type = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
        first_line = str(record.msg).split("\n", 1)[0][:120]
        dropped = self._gate.admit((record.name, str(record.levelno), first_line, exc_type))
        if dropped is None:
            return False
        if dropped:
            interval = f"{self._gate.interval_s:g}"
            record.msg = f"{record.msg} [{dropped} more like this in the last {interval} s]"
        return True


def install(loop: asyncio.AbstractEventLoop, interval_s: float = INTERVAL_S) -> None:
    """Gate the noisy loggers and the loop's exception handler."""
    repeat_filter = RepeatFilter(RepeatGate(interval_s))
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RepeatFilter) for f in logger.filters):
            logger.addFilter(repeat_filter)
    gate = RepeatGate(interval_s)

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        key = ("loop", str(context.get("message", ""))[:120], type(exc).__name__)
        dropped = gate.admit(key)
        if dropped is None:
            return
        more = f" [{dropped} more like this in the last {interval_s:g} s]" if dropped else ""
        if isinstance(exc, OSError):  # out of descriptors, resets: a line, not a traceback
            log.error("%s: %s%s", context.get("message", "event loop error"), exc, more)
        else:
            log.error("%s%s", context.get("message", "event loop error"), more, exc_info=exc)

    loop.set_exception_handler(handle)
