"""Typed, case-insensitive access to command parameters; every helper raises a coded error."""

from __future__ import annotations

from collections.abc import Iterable

from sense_plugin.errors import (
    EmptyValueError,
    MissingParameterError,
    OutOfRangeError,
    SenseError,
    quote_input,
)
from sense_plugin.ids import is_u64_text
from sense_plugin.timestamps import parse_timestamp


class Params:
    """Query (and form) parameters with lower-cased names; values are already URL-decoded."""

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in items:
            self._values.setdefault(name.lower(), []).append(value)

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def text(self, name: str, *, required: bool = False) -> str | None:
        """The stripped value of ``name``; -10 when required and absent, -23 when empty."""
        values = self._values.get(name)
        if values is None:
            if required:
                raise MissingParameterError(f"missing parameter '{name}'")
            return None
        distinct = {v.strip() for v in values}
        if len(distinct) > 1:
            raise OutOfRangeError(
                f"parameter '{name}' is given more than once with different values"
            )
        value = distinct.pop()
        if not value:
            raise EmptyValueError(f"parameter '{name}' is empty")
        return value

    def u64(self, name: str, error: type[SenseError], *, required: bool = False) -> int | None:
        """An unsigned 64-bit id; malformed values raise ``error`` (e.g. -17 for serverid)."""
        value = self.text(name, required=required)
        return None if value is None else parse_u64(value, name, error)

    def timestamp(self, name: str, *, required: bool = False) -> int | None:
        """A wire timestamp in µs since the epoch (-4 when malformed)."""
        value = self.text(name, required=required)
        return None if value is None else parse_timestamp(value, name)

    def integer(
        self, name: str, *, minimum: int, maximum: int, default: int | None = None
    ) -> int | None:
        """A bounded decimal integer (-22 when malformed or out of range)."""
        value = self.text(name)
        if value is None:
            return default
        return parse_int(value, name, minimum, maximum)


def parse_u64(value: str, name: str, error: type[SenseError]) -> int:
    """Parse an unsigned 64-bit decimal id, raising ``error`` naming ``name``."""
    if not is_u64_text(value):
        raise error(f"{name} '{quote_input(value, 40)}' is not an unsigned 64-bit number")
    return int(value)


def parse_int(value: str, name: str, minimum: int, maximum: int) -> int:
    """Parse a bounded integer, raising -22 naming ``name``."""
    text = value.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
        raise OutOfRangeError(f"{name} '{quote_input(value, 40)}' is not a whole number")
    number = int(text)
    if not minimum <= number <= maximum:
        raise OutOfRangeError(f"{name} {number} is outside {minimum}..{maximum}")
    return number
