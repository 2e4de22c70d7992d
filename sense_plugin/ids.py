"""Unsigned 64-bit ids (server and device ids, docs/protocol.rst): their bound and their text
form."""

from __future__ import annotations

#: The largest unsigned 64-bit number.
MAX_U64 = 2**64 - 1
#: Decimal digits of ``MAX_U64``: longer text is refused before ``int()`` reads it.
_MAX_U64_DIGITS = len(str(MAX_U64))


def is_u64_text(text: str) -> bool:
    """True when ``text`` is the decimal form of an unsigned 64-bit number (ASCII digits only)."""
    return (text.isascii() and text.isdigit() and len(text) <= _MAX_U64_DIGITS
            and int(text) <= MAX_U64)
