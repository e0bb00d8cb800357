"""Time ranges in the console's terms: -PT15M ends now, an ISO start/end is a fixed window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lab.localcloud.dashboard.timerange import TimeRangeError, iso, time_range

NOW = datetime(2026, 11, 2, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "length"),
    [
        ("-PT5M", timedelta(minutes=5)),
        ("-PT15M", timedelta(minutes=15)),
        ("-PT1H", timedelta(hours=1)),
        ("-PT3H", timedelta(hours=3)),
        ("-P1D", timedelta(days=1)),
        ("-P1W", timedelta(weeks=1)),
        ("-PT1H30M", timedelta(minutes=90)),
    ],
)
def test_a_relative_range_ends_now(start: str, length: timedelta) -> None:
    window = time_range(start, None, now=NOW)
    assert (window.start, window.end, window.relative) == (NOW - length, NOW, start)


def test_no_start_is_the_default_range() -> None:
    assert time_range(None, None, now=NOW, default="-PT1H").start == NOW - timedelta(hours=1)


def test_an_absolute_window_is_kept_as_given() -> None:
    window = time_range("2026-11-02T09:00:00Z", "2026-11-02T09:20:00Z", now=NOW)
    assert iso(window.start) == "2026-11-02T09:00:00Z"
    assert iso(window.end) == "2026-11-02T09:20:00Z"
    assert window.relative is None


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("-PT", None, "is not a relative range"),
        ("-PT0M", None, "is an empty range"),
        ("yesterday", "2026-11-02T09:00:00Z", "is not an ISO 8601 time"),
        ("-PT15M", "2026-11-02T09:00:00Z", "a relative start (-PT15M) ends now"),
        ("2026-11-02T09:00:00Z", None, "an absolute start needs an end"),
        ("2026-11-02T09:00:00Z", "2026-11-02T08:00:00Z", "end must be after start"),
        ("-P30D", None, "the longest range is 15 days"),
    ],
)
def test_what_is_not_a_range_is_named(start: str, end: str | None, message: str) -> None:
    with pytest.raises(TimeRangeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        time_range(start, end, now=NOW)
