"""Per-account figures: seats, utilization, adoption, growth, integrations, health, flags.

An account's users are the known users whose account as of ``until`` is that account
(docs/metrics.md, "a user's account"); the same attribution serves active users, growth,
stickiness, adoption and churn. Account rows always show the account's own figures:
a user/account filter picks which rows appear, it does not shrink them.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from uptake_aggregator.metrics.activity import UserActivity
from uptake_aggregator.metrics.context import ReportContext
from uptake_aggregator.metrics.features import FeatureUsage
from uptake_aggregator.metrics.health import band, flags, health_score
from uptake_aggregator.units import DAY_US

__all__ = [
    "SeatHistory",
    "account_rows",
    "integration_uses",
    "listed_accounts",
    "seat_history",
]


@dataclass(frozen=True)
class SeatHistory:
    """One account's ``seats`` events before ``until``, in (ts, id) order."""

    timestamps: list[int]
    seats: list[int]

    def as_of(self, end_us: int) -> int | None:
        """Seats of the latest seats event strictly before ``end_us``, None if none."""
        index = bisect.bisect_left(self.timestamps, end_us)
        return self.seats[index - 1] if index else None

    def changes_between(self, start_us: int, end_us: int) -> bool:
        """True when a seats event falls in ``[start_us, end_us)``."""
        timestamps = self.timestamps
        return bisect.bisect_left(timestamps, start_us) < bisect.bisect_left(timestamps, end_us)


def seat_history(ctx: ReportContext) -> dict[str, SeatHistory]:
    """Seat histories of every account, limited to events before ``until``."""
    histories: dict[str, SeatHistory] = {}
    for account, ts, seats in ctx.source.seat_events(ctx.window.end_us):
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


def _daily_logins(
    ctx: ReportContext, accounts: list[str], members: dict[str, list[str]]
) -> dict[str, dict[int, int]]:
    """Per account (of ``accounts``) and window day: users of the account with a login."""
    users = [(user, account) for account in accounts for user in members.get(account, [])]
    return ctx.source.daily_logins(ctx.window, users)


def _daily_seats(ctx: ReportContext, history: SeatHistory) -> list[int | None]:
    """Seats as of the end of each window day."""
    return [history.as_of((day + 1) * DAY_US) for day in range(ctx.window.start, ctx.window.end)]


def _adoption_rates(
    ctx: ReportContext,
    listed: list[str],
    members: dict[str, list[str]],
    histories: dict[str, SeatHistory],
    activity: dict[str, UserActivity],
) -> dict[str, float | None]:
    """Mean over window days with seats > 0 of (users with a login that day / seats).

    When seats stay the same over the window the sum of daily logins is the members'
    login days; only accounts whose seats change need the per-day query.
    """
    rates: dict[str, float | None] = {}
    varying: dict[str, list[int | None]] = {}
    first_day_end = (ctx.window.start + 1) * DAY_US
    for account in listed:
        history = histories.get(account)
        if history is None:
            rates[account] = None
            continue
        if history.changes_between(first_day_end, ctx.window.end_us):
            seats = _daily_seats(ctx, history)
            if len(set(seats)) > 1:
                varying[account] = seats
                continue
        constant = history.as_of(first_day_end)
        if constant is None or constant <= 0:
            rates[account] = None
            continue
        login_days = sum(
            activity[user].login_days for user in members.get(account, []) if user in activity
        )
        rates[account] = login_days / constant / ctx.window.days
    daily = _daily_logins(ctx, sorted(varying), members)
    for account, seats in varying.items():
        logins = daily.get(account, {})
        shares = [
            logins.get(ctx.window.start + offset, 0) / day_seats
            for offset, day_seats in enumerate(seats)
            if day_seats is not None and day_seats > 0
        ]
        rates[account] = sum(shares) / len(shares) if shares else None
    return rates


def integration_uses(ctx: ReportContext) -> set[tuple[str, str, str]]:
    """Distinct (user or '', event account or '', integration) in the window."""
    return ctx.source.integration_uses(ctx.window, most_history=ctx.covers_most_history())


def _integrations(ctx: ReportContext, uses: set[tuple[str, str, str]]) -> dict[str, int]:
    """Distinct integrations per account: through the user's account, else the event's."""
    per_account: dict[str, set[str]] = {}
    for user, account, integration in uses:
        if user:
            info = ctx.known.get(user)
            owner = info.account if info is not None else None
        else:
            owner = account or None
        if owner is not None:
            per_account.setdefault(owner, set()).add(integration)
    return {account: len(found) for account, found in per_account.items()}


def _ratio(numerator: int, denominator: int | None) -> Fraction | None:
    """Exact ``numerator / denominator``; None for an unknown or non-positive denominator.

    Exact so the health score rounds an exact half up; ``float()`` of it is the report's
    rate (``Fraction.__float__`` is the same true division).
    """
    if denominator is None or denominator <= 0:
        return None
    return Fraction(numerator, denominator)


def _as_float(ratio: Fraction | None) -> float | None:
    return None if ratio is None else float(ratio)


def account_rows(
    ctx: ReportContext,
    activity: dict[str, UserActivity],
    previous: set[str],
    usage: FeatureUsage,
    integration_set: set[tuple[str, str, str]],
) -> list[dict[str, Any]]:
    """The report's ``accounts`` list, sorted by account id.

    ``integration_set``: what ``integration_uses`` returned.
    """
    listed = listed_accounts(ctx)
    if not listed:
        return []
    members: dict[str, list[str]] = {}
    for user, info in ctx.known.items():
        if info.account is not None:
            members.setdefault(info.account, []).append(user)
    histories = seat_history(ctx)
    adoption = _adoption_rates(ctx, listed, members, histories, activity)
    integrations = _integrations(ctx, integration_set)
    window = ctx.window
    product_features = len(usage.totals)
    account_features = usage.account_features
    rows = []
    for account in sorted(listed):
        users = members.get(account, [])
        active = 0
        active_days = 0
        before = 0
        returning = 0
        for user in users:
            days = activity.get(user)
            if days is not None:
                active += 1
                active_days += days.active_days
            if user in previous:
                before += 1
                returning += days is not None
        history = histories.get(account)
        seats = history.as_of(window.end_us) if history is not None else None
        exact_utilization = _ratio(active, seats)
        exact_growth = _ratio(active, before)
        utilization = _as_float(exact_utilization)
        breadth = account_features.get(account, 0)
        score = health_score(
            utilization=exact_utilization,
            # The account's DAU summed over the window = its members' active days.
            stickiness=Fraction(active_days, window.days * active) if active else Fraction(0),
            growth=exact_growth,
            breadth=_ratio(breadth, product_features),
        )
        rows.append(
            {
                "account": account,
                "seats": seats,
                "active_users": active,
                "utilization": utilization,
                "adoption_rate": adoption[account],
                "growth": _as_float(exact_growth),
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
