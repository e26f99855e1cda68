"""The Central Access Point's triage clock: urgent referrals are assessed within hours,
routine ones triaged by the end of the next working day (England and Wales bank holidays).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays


@lru_cache(maxsize=8)
def _calendar(subdivision: str) -> holidays.HolidayBase:
    country, _, sub = subdivision.partition("-")
    return holidays.country_holidays(country, subdiv=sub or None)


def is_working_day(day: datetime, subdivision: str = "GB-ENG") -> bool:
    return day.weekday() < 5 and day.date() not in _calendar(subdivision)


def triage_due(
    received: datetime, urgent: bool, *, urgent_hours: int = 4, timezone: str = "Europe/London",
    day_ends: time = time(17, 0), subdivision: str = "GB-ENG",
) -> datetime:
    """When triage is due, in local time (an aware datetime)."""
    zone = ZoneInfo(timezone)
    local = received.astimezone(zone)
    if urgent:
        return (received + timedelta(hours=urgent_hours)).astimezone(zone)
    day = local
    while True:
        day = day + timedelta(days=1)
        if is_working_day(day, subdivision):
            return datetime.combine(day.date(), day_ends, tzinfo=zone)
