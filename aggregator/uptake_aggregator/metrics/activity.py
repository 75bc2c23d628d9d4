"""Activity: DAU series, WAU/MAU, per-user active days (docs/metrics.md).

Active user: a user with at least one event of any kind that day. The store answers per
(day, user) activity (``ReportSource``); this module shapes it into the report's series.
"""

from __future__ import annotations

from uptake_aggregator.metrics.context import ReportContext
from uptake_aggregator.store.reports import UserActivity

__all__ = [
    "UserActivity",
    "active_users_between",
    "dau_series",
    "previous_active",
    "trailing_active",
    "user_activity",
]


def dau_series(ctx: ReportContext) -> list[int]:
    """Distinct active users of the population on each window day, zeros included."""
    window = ctx.window
    counts = [0] * window.days
    for day, users in ctx.source.daily_active_users(window.start, window.end).items():
        counts[day - window.start] = users
    return counts


def active_users_between(ctx: ReportContext, start: int, end: int) -> int:
    """Distinct population users active on some day in ``[start, end)`` (day numbers)."""
    return ctx.source.active_user_count(start, end)


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

    All users, unfiltered. Active days per week come packed in one integer (see
    ``UserActivity``), in the same pass: retention needs no query of its own.
    """
    return ctx.source.user_activity(ctx.window, most_history=ctx.covers_most_history())


def previous_active(ctx: ReportContext) -> set[str]:
    """Users (all, unfiltered) active in the previous window ``[since - n, since)``."""
    window = ctx.window
    return ctx.source.users_active_between(window.previous_start, window.start)
