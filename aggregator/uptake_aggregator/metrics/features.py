"""Feature usage from the ``feature_day`` rollup: per feature, per user, per account.

A feature event counts for an account through its user: the user's account as of
``until`` (DESIGN §5 "a user's account"), the same attribution as per-account active
users; an event without a user counts for the account it names, if any.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from uptake_aggregator.metrics.context import ReportContext

__all__ = ["FeatureUsage", "feature_rows", "feature_usage"]


@dataclass
class FeatureUsage:
    """Feature use in the window, at (feature, user, account) grain.

    ``rows`` holds (feature, user or None, account or None, events); ``per_user`` and
    ``per_account`` the distinct features of each (breadth, over everyone, unfiltered).
    """

    rows: list[tuple[str, str | None, str | None, int]] = field(default_factory=list)
    per_user: dict[str, set[str]] = field(default_factory=dict)
    per_account: dict[str, set[str]] = field(default_factory=dict)
    all_features: set[str] = field(default_factory=set)


def feature_usage(ctx: ReportContext) -> FeatureUsage:
    """Read the window's feature use once, grouped to (feature, user, account)."""
    usage = FeatureUsage()
    # Group in SQLite first (one row per feature and user, or per feature and named
    # account for user-less events); attribute users to accounts on those few rows.
    grouped = ctx.conn.execute(
        "SELECT feature, user, CASE WHEN user = '' THEN account ELSE '' END AS acct, "
        "sum(events) FROM feature_day WHERE day >= ? AND day < ? "
        "GROUP BY feature, user, acct",
        (ctx.window.start, ctx.window.end),
    ).fetchall()
    accounts = {user: info.account for user, info in ctx.known.items()}
    rows = [
        (feature, user, accounts.get(user), events)
        if user
        else (feature, None, account or None, events)
        for feature, user, account, events in grouped
    ]
    usage.rows = rows
    per_user = usage.per_user
    per_account = usage.per_account
    for feature, user, account, _ in rows:
        usage.all_features.add(feature)
        if user is not None:
            per_user.setdefault(user, set()).add(feature)
        if account is not None:
            per_account.setdefault(account, set()).add(feature)
    return usage


def feature_rows(
    ctx: ReportContext, usage: FeatureUsage, active_users: int
) -> list[dict[str, object]]:
    """The report's ``features`` list over the population, most used first.

    ``adoption`` is users of the feature / active users in the window (None when there
    are no active users).
    """
    totals: dict[str, list[int]] = {}
    users: dict[str, set[str]] = {}
    accounts: dict[str, set[str]] = {}
    wanted = ctx.filters.feature
    for feature, user, account, events in usage.rows:
        if wanted is not None and feature != wanted:
            continue
        if ctx.population is not None and (user is None or user not in ctx.population):
            continue
        totals.setdefault(feature, [0])[0] += events
        feature_users = users.setdefault(feature, set())
        feature_accounts = accounts.setdefault(feature, set())
        if user is not None:
            feature_users.add(user)
        if account is not None:
            feature_accounts.add(account)
    ordered = sorted(totals, key=lambda name: (-totals[name][0], name))
    return [
        {
            "name": name,
            "events": totals[name][0],
            "users": len(users[name]),
            "accounts": len(accounts[name]),
            "adoption": len(users[name]) / active_users if active_users else None,
        }
        for name in ordered
    ]
