"""The report window: filters' dates resolved to a half-open range of UTC days.

Days are numbered since the Unix epoch (``ts // DAY_US``), the numbering the rollups use.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from uptake_aggregator.errors import QueryError
from uptake_aggregator.units import DAY_US

__all__ = [
    "DEFAULT_DAYS",
    "MAX_PACKED_WEEKS",
    "WEEK_BITS",
    "Window",
    "day_date",
    "day_number",
    "monday_of",
    "resolve_window",
]

#: Length of the window when ``since`` is not given (docs/metrics.md).
DEFAULT_DAYS: Final = 30
_EPOCH: Final = dt.date(1970, 1, 1)


def day_number(day: dt.date) -> int:
    """Return the UTC day number of a date (days since 1970-01-01).

    >>> day_number(dt.date(1970, 1, 2))
    1
    """
    return (day - _EPOCH).days


def day_date(number: int) -> dt.date:
    """Return the date of a UTC day number (the inverse of ``day_number``)."""
    return _EPOCH + dt.timedelta(days=number)


@dataclass(frozen=True)
class Window:
    """The half-open report window ``[since, until)`` as UTC day numbers."""

    start: int
    end: int

    @property
    def days(self) -> int:
        """Number of days in the window (at least 1)."""
        return self.end - self.start

    @property
    def previous_start(self) -> int:
        """First day of the previous window: equal length, ending at ``since``."""
        return self.start - self.days

    @property
    def start_us(self) -> int:
        """``since`` as microseconds since the epoch."""
        return self.start * DAY_US

    @property
    def end_us(self) -> int:
        """``until`` as microseconds since the epoch."""
        return self.end * DAY_US

    @property
    def first_monday(self) -> int:
        """The Monday of the window's first week: week 0 of ``UserActivity.week_days``."""
        return monday_of(self.start)

    @property
    def weeks_packable(self) -> bool:
        """True when the window's weeks fit ``UserActivity.week_days`` (about 20 weeks)."""
        return (self.end - 1 - self.first_monday) // 7 < MAX_PACKED_WEEKS

    @property
    def since(self) -> dt.date:
        """First day of the window."""
        return day_date(self.start)

    @property
    def until(self) -> dt.date:
        """First day after the window."""
        return day_date(self.end)


def _parse(value: str, flag: str) -> dt.date:
    try:
        if len(value) != 10:
            raise ValueError(value)
        return dt.date.fromisoformat(value)
    except ValueError:
        raise QueryError(
            f"bad {flag} date {value!r}: expected a UTC date as YYYY-MM-DD, e.g. 2026-01-31"
        ) from None


def resolve_window(since: str | None, until: str | None, *, today: dt.date | None = None) -> Window:
    """Resolve ``--since``/``--until`` into a ``Window``; raise ``QueryError`` on bad dates.

    ``until`` defaults to tomorrow (so today is included), ``since`` to 30 days before
    ``until``. Example: ``resolve_window("2026-01-01", "2026-02-01")`` spans 31 days.
    """
    if today is None:
        today = dt.datetime.now(dt.timezone.utc).date()
    end = _parse(until, "--until") if until is not None else today + dt.timedelta(days=1)
    start = _parse(since, "--since") if since is not None else end - dt.timedelta(DEFAULT_DAYS)
    if start >= end:
        raise QueryError(
            f"empty window: --since {start.isoformat()} is not before --until "
            f"{end.isoformat()} (the window is [since, until), in UTC days)"
        )
    return Window(day_number(start), day_number(end))


def monday_of(day: int) -> int:
    """Day number of the Monday starting the ISO week of ``day`` (1970-01-01 was a Thursday)."""
    return day - (day + 3) % 7


#: Bits per week in ``UserActivity.week_days``: a week has at most 7 active days (0b111),
#: so a per-day sum of ``1 << (3 * week)`` never carries into the next week.
WEEK_BITS: Final = 3
#: Weeks that fit in a signed 64-bit SQLite integer at ``WEEK_BITS`` each.
MAX_PACKED_WEEKS: Final = 63 // WEEK_BITS
