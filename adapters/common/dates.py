"""HL7 v2 TS/DTM values to FHIR date and dateTime, keeping precision; local time is Europe/London."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")
_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,4}))?([+-]\d{4})?$")


class BadDate(ValueError):
    pass


def _split(value: str) -> tuple[list[str | None], str | None, str | None]:
    m = _TS.match(value.strip())
    if not m:
        raise BadDate(f"{value!r} is not an HL7 date/time (YYYY[MM[DD[HH[MM[SS]]]]][+ZZZZ])")
    y, mo, d, h, mi, s, frac, off = m.groups()
    try:
        datetime(int(y), int(mo or 1), int(d or 1), int(h or 0), int(mi or 0), int(s or 0))
    except ValueError as exc:
        raise BadDate(f"{value!r} is an impossible date/time ({exc})") from exc
    return [y, mo, d, h, mi, s], frac, off


def to_date(value: str) -> str:
    (y, mo, d, *_), _, _ = _split(value)
    return "-".join(p for p in (y, mo, d) if p)


def to_datetime(value: str) -> str:
    (y, mo, d, h, _mi, _s), frac, _off = _split(value)
    if h is None or d is None:
        return "-".join(p for p in (y, mo, d) if p)
    return instant(value).isoformat(timespec="milliseconds" if frac else "seconds")


def instant(value: str) -> datetime:
    """An aware datetime; a value without an offset is London local time."""
    (y, mo, d, h, mi, s), frac, off = _split(value)
    micro = int((frac or "0").ljust(6, "0")[:6])
    naive = datetime(int(y or 0), int(mo or 1), int(d or 1), int(h or 0), int(mi or 0), int(s or 0), micro)
    if off:
        sign = 1 if off[0] == "+" else -1
        from datetime import timedelta, timezone

        return naive.replace(tzinfo=timezone(sign * timedelta(hours=int(off[1:3]), minutes=int(off[3:5]))))
    return naive.replace(tzinfo=LONDON)
