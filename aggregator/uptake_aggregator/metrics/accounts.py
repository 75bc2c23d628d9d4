"""Per-account figures: seats, utilization, adoption, growth, integrations, health, flags.

An account's users are the known users whose account as of ``until`` is that account
(DESIGN §5 "a user's account"); the same attribution serves active users, growth,
stickiness, adoption and churn. Account rows always show the account's own figures:
a user/account filter picks which rows appear, it does not shrink them.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from uptake_aggregator.metrics.activity import UserActivity
from uptake_aggregator.metrics.context import ReportContext
from uptake_aggregator.metrics.features import FeatureUsage
from uptake_aggregator.metrics.health import band, flags, health_score
from uptake_aggregator.schema import DAY_US

__all__ = ["SeatHistory", "account_rows", "listed_accounts", "seat_history"]


@dataclass(frozen=True)
class SeatHistory:
    """One account's ``seats`` events before ``until``, in (ts, id) order."""

    timestamps: list[int]
    seats: list[int]

    def as_of(self, end_us: int) -> int | None:
        """Seats of the latest seats event strictly before ``end_us``, None if none."""
        index = bisect.bisect_left(self.timestamps, end_us)
        return self.seats[index - 1] if index else None


def seat_history(ctx: ReportContext) -> dict[str, SeatHistory]:
    """Seat histories of every account, limited to events before ``until``."""
    histories: dict[str, SeatHistory] = {}
    rows = ctx.conn.execute(
        "SELECT account, ts, seats FROM seats WHERE ts < ? ORDER BY account, ts, id",
        (ctx.window.end_us,),
    )
    for account, ts, seats in rows:
        history = histories.get(account)
        if history is None:
            history = histories[account] = SeatHistory([], [])
        history.timestamps.append(ts)
        history.seats.append(seats)
    return histories


def listed_accounts(ctx: ReportContext) -> list[str]:
    """Accounts the report lists: every account seen, unless a filter narrows them."""
    if ctx.filters.account is not None:
        return [ctx.filters.account]
    if ctx.filters.user is not None:
        info = ctx.known.get(ctx.filters.user)
        return [info.account] if info is not None and info.account is not None else []
    return list(ctx.accounts_seen)


def _daily(ctx: ReportContext) -> dict[str, dict[int, tuple[int, int]]]:
    """Per account and window day: (active users, users with a login)."""
    daily: dict[str, dict[int, tuple[int, int]]] = {}
    rows = ctx.conn.execute(
        "SELECT a.account, d.day, count(*), sum(d.logins > 0) "
        "FROM user_day d JOIN temp.user_acct a ON a.user = d.user "
        "WHERE d.day >= ? AND d.day < ? GROUP BY a.account, d.day",
        (ctx.window.start, ctx.window.end),
    )
    for account, day, active, logged_in in rows:
        daily.setdefault(account, {})[day] = (active, logged_in)
    return daily


def _integrations(ctx: ReportContext) -> dict[str, int]:
    rows = ctx.conn.execute(
        """
        SELECT acct, count(DISTINCT integration) FROM (
            SELECT i.integration,
                   CASE WHEN i.user = '' THEN nullif(i.account, '') ELSE a.account END AS acct
            FROM integration_day i LEFT JOIN temp.user_acct a ON a.user = i.user
            WHERE i.day >= ? AND i.day < ?
        ) WHERE acct IS NOT NULL GROUP BY acct
        """,
        (ctx.window.start, ctx.window.end),
    )
    return dict(rows)


def _ratio(numerator: int, denominator: int | None) -> float | None:
    if denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def account_rows(
    ctx: ReportContext,
    activity: dict[str, UserActivity],
    previous: set[str],
    usage: FeatureUsage,
) -> list[dict[str, Any]]:
    """The report's ``accounts`` list, sorted by account id."""
    listed = listed_accounts(ctx)
    if not listed:
        return []
    members: dict[str, list[str]] = {}
    for user, info in ctx.known.items():
        if info.account is not None:
            members.setdefault(info.account, []).append(user)
    histories = seat_history(ctx)
    daily = _daily(ctx)
    integrations = _integrations(ctx)
    window = ctx.window
    product_features = len(usage.all_features)
    rows = []
    for account in sorted(listed):
        users = members.get(account, [])
        active = sum(1 for user in users if user in activity)
        before = sum(1 for user in users if user in previous)
        returning = sum(1 for user in users if user in activity and user in previous)
        history = histories.get(account)
        seats = history.as_of(window.end_us) if history is not None else None
        utilization = _ratio(active, seats)
        days = daily.get(account, {})
        dau_total = sum(day_active for day_active, _ in days.values())
        stickiness = dau_total / window.days / active if active else 0.0
        adoption_rate = None
        if history is not None:
            shares = []
            for day in range(window.start, window.end):
                share = _ratio(days.get(day, (0, 0))[1], history.as_of((day + 1) * DAY_US))
                if share is not None:
                    shares.append(share)
            adoption_rate = sum(shares) / len(shares) if shares else None
        growth = _ratio(active, before)
        breadth = len(usage.per_account.get(account, ()))
        score = health_score(
            utilization=utilization,
            stickiness=stickiness,
            growth=growth,
            breadth=breadth / product_features if product_features else None,
        )
        rows.append(
            {
                "account": account,
                "seats": seats,
                "active_users": active,
                "utilization": utilization,
                "adoption_rate": adoption_rate,
                "growth": growth,
                "integrations": integrations.get(account, 0),
                "breadth": breadth,
                "health": score,
                "band": band(score),
                "flags": flags(
                    seats=seats,
                    active_users=active,
                    previous_active=before,
                    returning=returning,
                    utilization=utilization,
                ),
            }
        )
    return rows
