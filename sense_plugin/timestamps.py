"""Wire timestamps (docs/protocol.rst): parse UTC input, format ``YYYY-MM-DD HH:MM:SS.zzz`` output.

Inside the package every instant is an integer count of microseconds since the Unix epoch
(``*_us``); integer arithmetic keeps per-packet maths fast and exact.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

from sense_plugin.errors import InvalidTimestampError, quote_input

US_PER_S = 1_000_000
#: A hole in a recording is a gap when more than this is missing between the end of one frame
#: and the next frame: the one tolerance of the cut, the manifest, the status, getRecordings
#: and the page (docs/evidence.rst, "Gaps"). Below it: jitter, and a B-run left out at the end.
GAP_TOLERANCE_US = 500_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_PATTERN = re.compile(
    r"(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})[ T]"
    r"(?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})"
    r"(?:\.(?P<frac>\d{1,6}))?"
    r"(?:Z|\+00:00)?",
    re.ASCII,
)


def parse_timestamp(text: str, name: str = "timestamp") -> int:
    """Parse a wire timestamp into microseconds since the epoch.

    Raises :class:`InvalidTimestampError` naming ``name`` for anything that is not a valid
    UTC timestamp in the accepted forms, including impossible dates such as ``2026-02-30``.
    """
    match = _PATTERN.fullmatch(text.strip())
    if match is None:
        raise InvalidTimestampError(
            f"{name}: '{quote_input(text)}' is not a timestamp of the form "
            "YYYY-MM-DD HH:MM:SS[.zzz]"
        )
    parts = match.groupdict()
    frac = (parts["frac"] or "").ljust(6, "0")
    try:
        moment = datetime(
            int(parts["y"]),
            int(parts["mo"]),
            int(parts["d"]),
            int(parts["h"]),
            int(parts["mi"]),
            int(parts["s"]),
            int(frac or 0),
            tzinfo=UTC,
        )
    except ValueError:
        raise InvalidTimestampError(
            f"{name}: '{quote_input(text)}' is not a valid date and time"
        ) from None
    return datetime_to_us(moment)


def format_timestamp(instant_us: int) -> str:
    """Format microseconds since the epoch as ``YYYY-MM-DD HH:MM:SS.zzz`` (UTC, truncated)."""
    moment = us_to_datetime(instant_us)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def format_compact(instant_us: int) -> str:
    """Format for file names: ``20261120T100000.000Z`` (sortable, no separators to escape)."""
    moment = us_to_datetime(instant_us)
    return moment.strftime("%Y%m%dT%H%M%S.") + f"{moment.microsecond // 1000:03d}Z"


def datetime_to_us(moment: datetime) -> int:
    """Convert an aware datetime to microseconds since the epoch, exactly."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * US_PER_S + delta.microseconds


def us_to_datetime(instant_us: int) -> datetime:
    """Convert microseconds since the epoch to an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=instant_us)


def now_us() -> int:
    """The current UTC time in microseconds since the epoch."""
    return time.time_ns() // 1000


def creation_time_text(start_us: int) -> str:
    """ISO 8601 text with microseconds, as stored in the ``creation_time`` metadata."""
    return us_to_datetime(start_us).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
