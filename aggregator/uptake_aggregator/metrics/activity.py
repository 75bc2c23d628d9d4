"""Activity from the ``user_day`` rollup: DAU series, WAU/MAU, per-user active days.

Active user (DESIGN §5): a user with at least one event of any kind that day. Everything
here reads ``user_day`` rows, one per active (day, user), never raw events.
"""

from __future__ import annotations

from typing import NamedTuple

from uptake_aggregator.metrics.context import ReportContext
from uptake_aggregator.window import WEEK_BITS

__all__ = [
    "UserActivity",
    "active_users_between",
    "dau_series",
    "previous_active",
    "trailing_active",
    "user_activity",
]


class UserActivity(NamedTuple):
    """One user's activity over the window.

    Active days, login events, days with a login, the last active day, and active days
    per week packed in one integer: ``WEEK_BITS`` bits for week k after the window's
    first Monday at bit ``WEEK_BITS * k`` (0 when the window has too many weeks to pack,
    see ``Window.weeks_packable``). A named tuple: a report builds one per active user,
    three times faster than a frozen dataclass.
    """

    active_days: int
    logins: int
    login_days: int
    last_day: int = -1
    week_days: int = 0


def dau_series(ctx: ReportContext) -> list[int]:
    """Distinct active users of the population on each window day, zeros included."""
    window = ctx.window
    counts = [0] * window.days
    rows = ctx.conn.execute(
        f"SELECT day, count(*) FROM user_day WHERE day >= ? AND day < ?{ctx.pop_clause()} "
        "GROUP BY day",
        (window.start, window.end),
    )
    for day, users in rows:
        counts[day - window.start] = users
    return counts


def active_users_between(ctx: ReportContext, start: int, end: int) -> int:
    """Distinct population users active on some day in ``[start, end)`` (day numbers)."""
    row = ctx.conn.execute(
        f"SELECT count(DISTINCT user) FROM user_day WHERE day >= ? AND day < ?{ctx.pop_clause()}",
        (start, end),
    ).fetchone()
    return int(row[0])


def trailing_active(
    ctx: ReportContext, days: int, activity: dict[str, UserActivity] | None = None
) -> int:
    """Active users over the trailing ``days`` days ending at ``until`` (WAU: 7, MAU: 30).

    The trailing period may reach before ``since`` when the window is shorter; when it
    does not, ``activity`` (what ``user_activity`` returned) answers without a query.
    """
    window = ctx.window
    first = window.end - days
    if activity is None or first < window.start:
        return active_users_between(ctx, first, window.end)
    return sum(
        1 for user, found in activity.items() if found.last_day >= first and ctx.in_population(user)
    )


def user_activity(ctx: ReportContext) -> dict[str, UserActivity]:
    """Active days, logins, last day and weeks of every user active in the window.

    All users, unfiltered. Active days per week come packed in one integer summed by
    SQLite (see ``UserActivity``), in the same pass: retention needs no query of its own.
    """
    window = ctx.window
    # The (user, day, logins) index covers the query and comes grouped by user.
    index = "INDEXED BY user_day_by_user " if ctx.covers_most_history() else ""
    weeks = f"sum(1 << ((day - :monday) / 7 * {WEEK_BITS}))" if window.weeks_packable else "0"
    rows = ctx.conn.execute(
        f"SELECT user, count(*), sum(logins), sum(logins > 0), max(day), {weeks} "
        f"FROM user_day {index}WHERE day >= :start AND day < :end GROUP BY user",
        {"start": window.start, "end": window.end, "monday": window.first_monday},
    )
    return {
        user: UserActivity(days, logins, login_days, last_day, weeks)
        for user, days, logins, login_days, last_day, weeks in rows
    }


def previous_active(ctx: ReportContext) -> set[str]:
    """Users (all, unfiltered) active in the previous window ``[since - n, since)``."""
    window = ctx.window
    rows = ctx.conn.execute(
        "SELECT DISTINCT user FROM user_day WHERE day >= ? AND day < ?",
        (window.previous_start, window.start),
    )
    return {user for (user,) in rows}
