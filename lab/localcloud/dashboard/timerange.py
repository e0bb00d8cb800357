"""The dashboard's time range in the console's own terms: `start=-PT15M` (the last 15 minutes, ending
now) or `start=<ISO 8601>&end=<ISO 8601>` (a fixed window, what a drill report links to).

The relative form is the dashboard body's (API Reference, "Dashboard Body Structure and Syntax":
"-PT5M shows the last 5 minutes, -PT8H shows the last 8 hours"): -P then weeks/days, T then
hours/minutes/seconds. Months (-P3M) are read as 30 days: metrics on the local cloud live two weeks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# The console's quick choices that the page and `lab dashboard --range` offer (label -> start);
# any other relative range works in the URL.
CHOICES = {"5m": "-PT5M", "15m": "-PT15M", "1h": "-PT1H", "3h": "-PT3H"}
DEFAULT_RANGE = CHOICES["15m"]
LONGEST = timedelta(days=15)
_RELATIVE = re.compile(
    r"^-P(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)


class TimeRangeError(ValueError):
    """A start/end the page or a person sent that is not a time range."""


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime
    # The relative form it came from (the page keeps refreshing it), None for a fixed window.
    relative: str | None

    def to_dict(self) -> dict[str, str | None]:
        return {"start": iso(self.start), "end": iso(self.end), "relative": self.relative}


def relative_duration(text: str) -> timedelta:
    match = _RELATIVE.match(text)
    if not match or not any(match.groupdict().values()):
        raise TimeRangeError(f"{text!r} is not a relative range such as -PT15M, -PT1H or -P1D")
    parts = {name: int(value or 0) for name, value in match.groupdict().items()}
    duration = timedelta(
        days=parts["months"] * 30 + parts["weeks"] * 7 + parts["days"],
        hours=parts["hours"],
        minutes=parts["minutes"],
        seconds=parts["seconds"],
    )
    if duration <= timedelta(0):
        raise TimeRangeError(f"{text!r} is an empty range")
    return duration


def parse_instant(text: str) -> datetime:
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise TimeRangeError(f"{text!r} is not an ISO 8601 time such as 2026-11-02T10:00:00Z") from None
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def time_range(
    start: str | None, end: str | None, *, now: datetime, default: str = DEFAULT_RANGE
) -> TimeRange:
    """The window a request asks for; TimeRangeError names what is wrong with it."""
    start = start or default
    if start.startswith("-P"):
        if end:
            raise TimeRangeError("a relative start (-PT15M) ends now: give no end")
        window = TimeRange(start=now - relative_duration(start), end=now, relative=start)
    else:
        if not end:
            raise TimeRangeError("an absolute start needs an end (ISO 8601 both)")
        window = TimeRange(start=parse_instant(start), end=parse_instant(end), relative=None)
    if window.end <= window.start:
        raise TimeRangeError("end must be after start")
    if window.end - window.start > LONGEST:
        raise TimeRangeError(f"the longest range is {LONGEST.days} days (the local cloud keeps two weeks)")
    return window


def iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def url_query(start: str, end: str | None = None) -> str:
    """`start=...&end=...` as the page and the console read it."""
    return f"start={start}" + (f"&end={end}" if end else "")
