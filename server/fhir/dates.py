"""FHIR date, dateTime and instant values as ranges of time.

Search compares ranges, not points: ``2024-03`` is the whole of March. A value is turned
into ``(low, high)`` in integer microseconds since the Unix epoch (UTC), both inclusive,
so that the store can index and compare them as plain integers on SQLite and PostgreSQL
alike. Values without a time zone are read in Europe/London, where this service runs.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")
#: Stand-ins for an open end of a Period (kept well inside int64).
MIN_TIME = -(2**62)
MAX_TIME = 2**62
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: the last microsecond Python can represent (9999-12-31T23:59:59.999999Z)
_MAX_MICROS = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_US = timedelta(microseconds=1)

_PATTERN = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2})(?::(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


class DateFormatError(ValueError):
    """A value that is not a FHIR date, dateTime or instant."""


def _micros(dt: datetime) -> int:
    return (dt - _EPOCH) // _US


def _zone(tz: str | None) -> ZoneInfo | object:
    if tz is None:
        return LONDON
    if tz == "Z":
        return UTC
    sign = 1 if tz[0] == "+" else -1
    hours, minutes = int(tz[1:3]), int(tz[4:6])
    from datetime import timezone

    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _local(y: int, m: int, d: int, zone: object, H: int = 0, M: int = 0, S: int = 0, us: int = 0) -> datetime:
    return datetime(y, m, d, H, M, S, us, tzinfo=zone)  # type: ignore[arg-type]


def parse_range(value: str) -> tuple[int, int]:
    """The inclusive ``(low, high)`` microsecond range a FHIR date/dateTime/instant covers.

    A period that ends after 9999 (the year 9999 itself, its last day or second) runs to the
    last microsecond Python represents, rather than failing: those are valid FHIR dates."""
    match = _PATTERN.match(value.strip())
    if not match:
        raise DateFormatError(f"{value!r} is not a FHIR date or dateTime")
    g = match.groupdict()
    zone = _zone(g["tz"])
    try:
        low = _start(g, zone)
    except ValueError as exc:  # e.g. month 13, 30 February
        raise DateFormatError(f"{value!r} is not a real date: {exc}") from None
    try:
        high = _micros(_end(g, zone, low))
    except (ValueError, OverflowError):
        high = max(_MAX_MICROS, _micros(low)) + 1
    return _micros(low), high - 1


def _start(g: dict[str, str | None], zone: object) -> datetime:
    """The first instant of the value's period."""
    y, m, d = int(g["y"] or 0), int(g["m"] or 1), int(g["d"] or 1)
    if g["H"] is None:
        return _local(y, m, d, zone)
    frac = g["f"] or ""
    return _local(y, m, d, zone, H=int(g["H"]), M=int(g["M"] or 0), S=int(g["S"] or 0),
                  us=int(frac[:6].ljust(6, "0")) if frac else 0)


def _end(g: dict[str, str | None], zone: object, low: datetime) -> datetime:
    """The first instant after the value's period (raises past the year 9999)."""
    y = int(g["y"] or 0)
    if g["m"] is None:
        return _local(y + 1, 1, 1, zone)
    m = int(g["m"])
    if g["d"] is None:
        return _local(y + (m == 12), m % 12 + 1, 1, zone)
    if g["H"] is None:  # the next calendar day in the value's zone, whatever its length
        return (low.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=zone)  # type: ignore[arg-type]
    if g["M"] is None:
        return low + timedelta(hours=1)
    if g["S"] is None:
        return low + timedelta(minutes=1)
    frac = g["f"]
    return low + (timedelta(seconds=1) if frac is None else timedelta(microseconds=10 ** max(0, 6 - len(frac))))


def parse_instant(value: str) -> datetime:
    """A full dateTime with a time zone, as an aware datetime."""
    low, _ = parse_range(value)
    return _EPOCH + timedelta(microseconds=low)


def from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def to_micros(value: datetime) -> int:
    return _micros(value)


def format_instant(micros: int) -> str:
    """A FHIR instant in UTC at millisecond precision (``2026-12-06T21:52:00.123Z``).

    Every meta.lastUpdated, Bundle timestamp and AuditEvent time is written by this one
    function: a transaction formats one per entry, and ``isoformat`` costs a fraction of
    ``strftime``."""
    moment = _EPOCH + timedelta(microseconds=micros - micros % 1000)
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"


def now_instant() -> tuple[str, int]:
    """The current time as a FHIR instant (millisecond precision, UTC) and in microseconds."""
    micros = time.time_ns() // 1000
    micros -= micros % 1000
    return format_instant(micros), micros


def http_date(micros: int) -> str:
    """An RFC 9110 HTTP date (for Last-Modified) from microseconds since the epoch."""
    dt = from_micros(micros)
    return dt.strftime("%a, %d %b %Y %H:%M:%S GMT")


def is_date_only(value: str) -> bool:
    return len(value) <= 10


def today_london() -> date:
    return datetime.now(LONDON).date()
