"""The access log and request metrics: one INFO line and two metric updates per request.

Polls are the exception: a page (or script) that follows its exports asks for their status
every second, and one INFO line per poll would bury everything else. Successful answers to
the polling commands (:data:`POLL_COMMANDS`) are DEBUG lines, counted into one INFO summary
line a minute at most (:class:`PollSummary`); their errors stay INFO lines. See
``docs/page.rst``, "Quiet".

The middleware sits outside the error middleware, so it sees every final answer with its
result code. Credentials never reach the log: Basic credentials and cookies are headers (not
logged), ``/webservice`` passwords are in the body (not logged), and query values whose name
suggests a secret are replaced by ``***``.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from sense_plugin.api.keys import REGISTRY
from sense_plugin.api.metrics import METRICS

log = logging.getLogger("sense_plugin.access")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_SECRET = re.compile(r"pass|key|token|secret|auth", re.IGNORECASE)
_ERRORCODE = re.compile(rb'<result errorcode="(-?\d+)"')
_PATH_LABELS = {"/info": "info", "/webservice": "webservice", "/metrics": "metrics"}
#: Read-only commands that pages and scripts repeat to follow exports and recordings.
POLL_COMMANDS = frozenset({"getExportVideoStatus", "getRecordings", "getServerStatus"})
SUMMARY_INTERVAL_S = 60.0


class PollSummary:
    """Counts successful polls; hands out one summary line per interval at most."""

    def __init__(self, interval_s: float = SUMMARY_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s, self.clock = interval_s, clock
        self.counts: Counter[str] = Counter()
        self.since = clock()

    def count(self, label: str) -> str | None:
        """Count a poll; the summary text once the interval is over, else None."""
        self.counts[label] += 1
        now = self.clock()
        if now - self.since < self.interval_s:
            return None
        total = sum(self.counts.values())
        parts = ", ".join(f"{name} {n}" for name, n in sorted(self.counts.items()))
        seconds = now - self.since
        self.counts.clear()
        self.since = now
        return f"{total} polls in the last {seconds:.0f} s ({parts})"


#: The process's poll counter (one log, one summary); tests may swap it.
POLL_SUMMARY = PollSummary()


def command_label(request: web.Request) -> str:
    """A bounded label: the registered command's name, else ``unknown``, or the path's role."""
    if request.path != "/command":
        if request.path in _PATH_LABELS:
            return _PATH_LABELS[request.path]
        return "web" if request.path == "/" or request.path.startswith("/web") else "other"
    for key, value in request.query.items():
        if key.lower() == "command":
            entry = request.app[REGISTRY].get(value)
            return entry.name if entry is not None else "unknown"
    return "unknown"


def result_code(request: web.Request, response: web.StreamResponse) -> str:
    """The document's ``errorcode``; ``0`` for a successful non-XML command answer (a
    download); ``-`` for pages and other paths."""
    if isinstance(response, web.Response) and isinstance(response.body, bytes):
        match = _ERRORCODE.search(response.body[:160])
        if match is not None:
            return match.group(1).decode()
    if request.path == "/command" and response.status < 300:
        return "0"
    return "-"


def _size(response: web.StreamResponse) -> str:
    if isinstance(response, web.Response) and isinstance(response.body, bytes):
        return str(len(response.body))
    length = response.content_length
    return str(length) if length is not None else "-"


def logged_target(request: web.Request) -> str:
    """Path and query with secret-looking values masked."""
    if not request.query_string:
        return request.path
    pairs = parse_qsl(request.query_string, keep_blank_values=True)
    masked = [(k, "***" if _SECRET.search(k) else v) for k, v in pairs]
    return f"{request.path}?{urlencode(masked, safe=',:')}"


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Time the request, count it by command and result code, log one line."""
    began = time.perf_counter()
    status, code, size = 500, "-", "-"
    try:
        response = await handler(request)
        status, code = response.status, result_code(request, response)
        size = _size(response)
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        seconds = time.perf_counter() - began
        label = command_label(request)
        request.app[METRICS].requests.record(label, code, seconds)
        _log_line(request, label, code, status, size, seconds)


def _log_line(request: web.Request, label: str, code: str, status: int, size: str,
              seconds: float) -> None:
    """An INFO access line, or for a successful poll a DEBUG one and now and then a summary.

    The line is only built when its level is enabled: polls come thousands a second and the
    masked target costs more than the rest of the log call (docs/performance.rst)."""
    poll = label in POLL_COMMANDS and code == "0"
    level = logging.DEBUG if poll else logging.INFO
    if log.isEnabledFor(level):
        log.log(level, '%s "%s %s" %d errorcode=%s %s B %.1f ms', request.remote or "-",
                request.method, logged_target(request), status, code, size, seconds * 1000)
    if poll:
        summary = POLL_SUMMARY.count(label)
        if summary is not None:
            log.info(summary)
