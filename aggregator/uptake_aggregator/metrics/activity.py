"""Activity from the ``user_day`` rollup: DAU series, WAU/MAU, per-user active days.

Active user (DESIGN §5): a user with at least one event of any kind that day. Everything
here reads ``user_day`` rows, one per active (day, user), never raw events.
"""

from __future__ import annotations

from dataclasses import dataclass

from uptake_aggregator.metrics.context import ReportContext

__all__ = [
    "UserActivity",
    "active_users_between",
    "dau_series",
    "previous_active",
    "trailing_active",
    "user_activity",
]


@dataclass(frozen=True)
class UserActivity:
    """One user's activity over the window: active days, login events, days with a login."""

    active_days: int
    logins: int
    login_days: int


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


def trailing_active(ctx: ReportContext, days: int) -> int:
    """Active users over the trailing ``days`` days ending at ``until`` (WAU: 7, MAU: 30).

    The trailing period may reach before ``since`` when the window is shorter.
    """
    return active_users_between(ctx, ctx.window.end - days, ctx.window.end)


def user_activity(ctx: ReportContext) -> dict[str, UserActivity]:
    """Active days and logins of every user active in the window (all users, unfiltered)."""
    # The (user, day, logins) index covers the query and comes grouped by user.
    index = "INDEXED BY user_day_by_user " if ctx.covers_most_history() else ""
    rows = ctx.conn.execute(
        f"SELECT user, count(*), sum(logins), sum(logins > 0) FROM user_day {index}"
        "WHERE day >= ? AND day < ? GROUP BY user",
        (ctx.window.start, ctx.window.end),
    )
    return {user: UserActivity(days, logins, login_days) for user, days, logins, login_days in rows}


def previous_active(ctx: ReportContext) -> set[str]:
    """Users (all, unfiltered) active in the previous window ``[since - n, since)``."""
    window = ctx.window
    rows = ctx.conn.execute(
        "SELECT DISTINCT user FROM user_day WHERE day >= ? AND day < ?",
        (window.previous_start, window.start),
    )
    return {user for (user,) in rows}
