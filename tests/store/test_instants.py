"""The one instant formatter: what the store writes as meta.lastUpdated and every response's
lastModified, read back to the millisecond it stands for."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from server.fhir.dates import format_instant, now_instant, parse_range

# 1900-01-01 to 2200-01-01 in microseconds since the epoch
MICROS = st.integers(min_value=-2_208_988_800_000_000, max_value=7_258_118_400_000_000)


@given(MICROS)
def test_an_instant_reads_back_as_its_millisecond(micros: int) -> None:
    text = format_instant(micros)
    assert len(text) == 24 and text.endswith("Z") and text[19] == "."
    low, high = parse_range(text)
    assert low == micros - micros % 1000
    assert high == low + 999


def test_known_instants() -> None:
    assert format_instant(0) == "1970-01-01T00:00:00.000Z"
    assert format_instant(1_733_520_000_123_999) == "2024-12-06T21:20:00.123Z"
    assert format_instant(-1) == "1969-12-31T23:59:59.999Z"


def test_now_is_whole_milliseconds_and_agrees_with_its_text() -> None:
    text, micros = now_instant()
    assert micros % 1000 == 0
    assert format_instant(micros) == text
