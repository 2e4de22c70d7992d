"""Unsigned 64-bit id text, as the configuration and the command parameters read it."""

from __future__ import annotations

import pytest

from sense_plugin.ids import MAX_U64, is_u64_text


@pytest.mark.parametrize(("text", "ok"), [
    ("0", True), ("7", True), (str(MAX_U64), True), (str(MAX_U64 + 1), False),
    ("", False), ("-1", False), ("+1", False), (" 1", False), ("0x10", False),
    ("\u0661", False), ("9" * 5000, False),  # Arabic-Indic digit; far too long for int()
])
def test_u64_text(text: str, ok: bool) -> None:
    assert is_u64_text(text) is ok
