"""Wire timestamps: accepted forms, round trips, and every impossible input rejected with -4."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sense_plugin.errors import InvalidTimestampError, ResultCode
from sense_plugin.timestamps import datetime_to_us, format_timestamp, parse_timestamp

moments = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31),
                       timezones=st.just(UTC))


@given(moments)
def test_format_then_parse_is_exact_to_the_millisecond(moment: datetime) -> None:
    instant = datetime_to_us(moment)
    text = format_timestamp(instant)
    assert parse_timestamp(text) == instant - instant % 1000
    assert format_timestamp(parse_timestamp(text)) == text


@given(moments, st.sampled_from([" ", "T"]), st.sampled_from(["", "Z", "+00:00"]))
def test_accepted_spellings(moment: datetime, sep: str, suffix: str) -> None:
    text = moment.strftime(f"%Y-%m-%d{sep}%H:%M:%S.%f") + suffix
    assert parse_timestamp(text) == datetime_to_us(moment)


@given(st.text(max_size=40))
def test_garbage_never_crashes(text: str) -> None:
    try:
        parse_timestamp(text)
    except InvalidTimestampError as exc:
        assert exc.code == ResultCode.INVALID_TIMESTAMP


@pytest.mark.parametrize("text", [
    "2026-02-30 10:00:00", "2026-01-01 24:00:00", "99999-01-01 00:00:00", "2026-1-1 00:00:00",
    "2026-01-01 00:00:60", "2026-01-01 00:00:00.1234567", "2026-01-01 00:00:00+01:00",
    "2026-01-01", "", "now", "２０２６-01-01 00:00:00",
])
def test_impossible_or_unsupported_forms(text: str) -> None:
    with pytest.raises(InvalidTimestampError, match="starttime"):
        parse_timestamp(text, "starttime")
