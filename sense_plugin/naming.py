"""Segment file naming: today's convention and ``archive_pattern`` for other recorders' archives.

A pattern is a path relative to the device's ``archive_dir``: strftime fields ``%Y %m %d %H %M
%S``, ``%f`` (a fraction of a second with any number of digits), ``%%``, ``{ext}`` (``mp4 mkv ts
mov`` in any letter case) and ``/`` between folders. Names are wall-clock times in the
pattern's IANA zone; a name inside the repeated hour of a DST change is ambiguous and parses to
both instants (the scanner picks one with the container's own start time or the file's mtime).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sense_plugin.timestamps import US_PER_S, datetime_to_us, us_to_datetime

#: Today's naming, written by our recorder and the demo generator (UTC).
DEFAULT_PATTERN = "%Y%m%dT%H%M%S.%fZ.{ext}"
DEFAULT_TIMEZONE = "UTC"
#: Segment formats (FFmpeg muxer names are in ``MUXERS`` below) and the extensions we read.
SEGMENT_EXTENSIONS = {"mp4": ".mp4", "mkv": ".mkv", "ts": ".ts"}
#: FFmpeg muxer names; the format is always given explicitly because temporary names end in .part.
MUXERS = {"mp4": "mp4", "mkv": "matroska", "ts": "mpegts"}
READ_EXTENSIONS = ("mp4", "mkv", "ts", "mov")
#: FFmpeg demuxer per extension (``.part`` names and odd cases never guess wrong).
DEMUXERS = {"mp4": "mp4", "mov": "mov", "mkv": "matroska", "ts": "mpegts"}

_FIELDS = {"Y": r"\d{4}", "m": r"\d{2}", "d": r"\d{2}", "H": r"\d{2}", "M": r"\d{2}",
           "S": r"\d{2}", "f": r"\d{1,9}"}
_REQUIRED = "YmdH"
_TOKEN_RE = re.compile(r"%(.)|\{ext\}|\{|\}|[^%{}]+", re.DOTALL)
_EXT_RE = "(?P<ext>(?i:mp4|mkv|ts|mov))"


class PatternError(ValueError):
    """An ``archive_pattern`` or ``archive_timezone`` that cannot be used; says why."""


@dataclass(frozen=True)
class NameTime:
    """The start a file name tells: ``start_us``, or ``alt_us`` one DST hour later when the
    local time was repeated; ``precision_us`` is how coarse the name is (1 s for ``%S``)."""

    start_us: int
    precision_us: int
    ext: str
    alt_us: int | None = None


class NamePattern:
    """A compiled ``archive_pattern`` in its zone; matches paths relative to the archive dir."""

    def __init__(self, text: str, timezone: str = DEFAULT_TIMEZONE) -> None:
        self.text = text
        self.timezone = timezone
        try:
            self.zone: tzinfo = ZoneInfo(timezone) if timezone != "UTC" else UTC
        except (ZoneInfoNotFoundError, ValueError):
            raise PatternError(f"unknown time zone {timezone!r} (use an IANA name such as "
                               f"'Europe/Berlin' or 'UTC')") from None
        self.regex, self.fields = _compile(text)
        #: How many folder levels the pattern spans below the archive dir.
        self.depth = text.count("/")

    def __repr__(self) -> str:
        return f"NamePattern({self.text!r}, {self.timezone!r})"

    def parse(self, relpath: str) -> NameTime | None:
        """The time a relative path (``/`` separated) names, or None if it does not match."""
        match = self.regex.fullmatch(relpath)
        if match is None:
            return None
        values = match.groupdict()
        fraction = values.get("f") or ""
        try:
            local = datetime(int(values["Y"]), int(values["m"]), int(values["d"]),
                             int(values["H"]), int(values.get("M") or 0),
                             int(values.get("S") or 0))
        except ValueError:
            return None
        frac_us = int((fraction + "000000")[:6]) if fraction else 0
        precision_us = _precision_us(self.fields, len(fraction))
        ext = values["ext"].lower()
        if not isinstance(self.zone, ZoneInfo):
            return NameTime(datetime_to_us(local.replace(tzinfo=UTC)) + frac_us,
                            precision_us, ext)
        first, second = (datetime_to_us(local.replace(tzinfo=self.zone, fold=f))
                         for f in (0, 1))
        if first != second and _exists(local, self.zone):
            early, late = sorted((first, second))
            return NameTime(early + frac_us, precision_us, ext, late + frac_us)
        return NameTime(first + frac_us, precision_us, ext)

    def format(self, start_us: int, ext: str) -> str:
        """The name this pattern gives a segment starting at ``start_us`` (``%f``: 6 digits)."""
        moment = us_to_datetime(start_us).astimezone(self.zone)
        out = []
        for token in _TOKEN_RE.finditer(self.text):
            field = token.group(1)
            if field == "f":
                out.append(f"{moment.microsecond:06d}")
            elif field == "%":
                out.append("%")
            elif field is not None:
                out.append(moment.strftime("%" + field))
            elif token.group(0) == "{ext}":
                out.append(ext)
            else:
                out.append(token.group(0))
        return "".join(out)


@functools.lru_cache(maxsize=256)
def compiled(text: str, timezone: str = DEFAULT_TIMEZONE) -> NamePattern:
    """The compiled pattern (cached); raises :class:`PatternError`."""
    return NamePattern(text, timezone)


def _compile(text: str) -> tuple[re.Pattern[str], frozenset[str]]:
    if not text or text.startswith("/") or "//" in text or text.endswith("/"):
        raise PatternError("must be a relative path such as '%Y%m%d-%H%M%S.{ext}'")
    if any(part in (".", "..") for part in text.split("/")):
        raise PatternError("must not contain '.' or '..' folders")
    if "{ext}" not in text:
        lowered = text.lower()
        literal = next((e for e in READ_EXTENSIONS if lowered.endswith("." + e)), None)
        if literal is None:
            raise PatternError("needs '{ext}' (or a literal .mp4/.mkv/.ts/.mov ending)")
        text = text[: -len(literal)] + "{ext}"
    parts: list[str] = []
    seen: set[str] = set()
    for token in _TOKEN_RE.finditer(text):
        field, whole = token.group(1), token.group(0)
        if field is not None:
            parts.append(_field_regex(field, seen))
        elif whole == "{ext}":
            if "ext" in seen:
                raise PatternError("'{ext}' may appear only once")
            seen.add("ext")
            parts.append(_EXT_RE)
        elif whole in "{}":
            raise PatternError(f"stray {whole!r}: only '{{ext}}' is a placeholder")
        else:
            parts.append(re.escape(whole))
    missing = [f"%{f}" for f in _REQUIRED if f not in seen]
    if missing:
        raise PatternError(f"has no {' '.join(missing)} field (a name must give at least the "
                           f"date and the hour: %Y %m %d %H)")
    if "S" in seen and "M" not in seen or "f" in seen and "S" not in seen:
        raise PatternError("%S needs %M, and %f needs %S")
    return re.compile("".join(parts)), frozenset(seen - {"ext"})


def _field_regex(field: str, seen: set[str]) -> str:
    if field == "%":
        return "%"
    if field not in _FIELDS:
        raise PatternError(f"unknown field '%{field}' (known: %Y %m %d %H %M %S %f %% and "
                           f"{{ext}})")
    if field in seen:
        return f"(?P={field})"  # repeated (a per-day folder and the file name): must agree
    seen.add(field)
    return f"(?P<{field}>{_FIELDS[field]})"


def _precision_us(fields: frozenset[str], fraction_digits: int) -> int:
    if "f" in fields:
        return int(10 ** max(0, 6 - fraction_digits))
    if "S" in fields:
        return US_PER_S
    return 60 * US_PER_S if "M" in fields else 3600 * US_PER_S


def _exists(local: datetime, zone: ZoneInfo) -> bool:
    """True when the wall-clock time occurs (both folds round-trip): an ambiguous hour."""
    return all(
        local.replace(tzinfo=zone, fold=f).astimezone(UTC).astimezone(zone).replace(
            tzinfo=None) == local for f in (0, 1))


# -- today's convention (recorder, demo generator) ------------------------------------------

_DEFAULT = NamePattern(DEFAULT_PATTERN)


def segment_filename(start_us: int, fmt: str) -> str:
    """Name of the segment starting at ``start_us``: ``20261120T100000.000000Z.mp4`` (UTC)."""
    return _DEFAULT.format(start_us, SEGMENT_EXTENSIONS[fmt].lstrip("."))


def parse_segment_filename(name: str) -> int | None:
    """The start (µs since the epoch) of a segment name in today's convention, else ``None``.

    Only names this server writes (six-digit fraction, lowercase mp4/mkv/ts) count here; an
    archive with other names is read through its ``archive_pattern``.
    """
    named = _DEFAULT.parse(name)
    if named is None or named.precision_us != 1 or name[-len(named.ext):] != named.ext \
            or named.ext not in SEGMENT_EXTENSIONS:
        return None
    return named.start_us
