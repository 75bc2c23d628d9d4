"""Feature usage: per feature, per user, per account, from the feature rollups.

A feature event counts for an account through its user: the user's account as of
``until`` (DESIGN §5 "a user's account"), the same attribution as per-account active
users; an event without a user counts for the account it names.

Two ways to the same numbers:

- SQL over ``user_feature`` (one row per (user, feature): first and last day of use),
  when the report has no user/account filter and no pair's use straddles the window
  (first use before ``since`` and last use at or after ``until``): then a pair was used in
  the window exactly when its first use is before ``until`` and its last use at or after
  ``since``. That holds for the default window (ending tomorrow) and for any window
  reaching the start of the data: one ``group_concat`` row per user, counted with
  C-level calls.
- Otherwise ``feature_day`` grouped to (feature, user) over the window's days, which
  costs in proportion to active user-days x features.

``feature_totals`` gives events per feature and the features of user-less events.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from uptake_aggregator.metrics.context import ReportContext

__all__ = ["FeatureUsage", "feature_rows", "feature_usage"]


@dataclass
class FeatureUsage:
    """Feature use in the window.

    Everyone (unfiltered): ``user_counts`` (distinct features per user),
    ``account_features`` (distinct feature hashes per account), ``totals`` (events per
    feature, all events). Over the report's population (what ``features`` lists):
    ``feature_users``, ``feature_accounts``, ``feature_events``. ``names``: the features
    with an event in the window.
    """

    names: set[str] = field(default_factory=set)
    totals: Counter[str] = field(default_factory=Counter)
    anonymous: dict[str, set[str]] = field(default_factory=dict)
    user_counts: dict[str, int] = field(default_factory=dict)
    account_features: dict[str, set[str]] = field(default_factory=dict)
    feature_users: Counter[str] = field(default_factory=Counter)
    feature_accounts: Counter[str] = field(default_factory=Counter)
    feature_events: Counter[str] = field(default_factory=Counter)


def feature_usage(ctx: ReportContext) -> FeatureUsage:
    """Read the window's feature use on ``ctx.conn`` (the SQL way when it is exact)."""
    usage = FeatureUsage()
    _read_totals(ctx, usage)
    window = ctx.window
    straddles = ctx.conn.execute(
        "SELECT EXISTS (SELECT 1 FROM user_feature WHERE first_day < ? AND last_day >= ?)",
        (window.start, window.end),
    ).fetchone()[0]
    # A name holding the separator cannot be split back: such a dataset takes the blobs.
    separable = not any(_SEPARATOR in name for name in usage.names)
    if ctx.population is None and not straddles and separable:
        _from_spans(ctx, usage)
    else:
        _from_pairs(ctx, usage)
    return usage


def _read_totals(ctx: ReportContext, usage: FeatureUsage) -> None:
    for name, account, events in ctx.conn.execute(
        "SELECT feature, account, sum(events) FROM feature_totals "
        "WHERE day >= ? AND day < ? GROUP BY feature, account",
        (ctx.window.start, ctx.window.end),
    ):
        usage.names.add(name)
        usage.totals[name] += events
        if account:
            usage.anonymous.setdefault(account, set()).add(name)


#: Separates feature names in one ``group_concat`` value (the ASCII record separator).
_SEPARATOR = "\x1e"


def _from_spans(ctx: ReportContext, usage: FeatureUsage) -> None:
    """Everyone's figures from ``user_feature``; only valid without straddling pairs.

    One row per user with the names of the features they used, joined by SQLite in key
    order (no sort); splitting and counting them are C-level calls per user.
    """
    counts: Counter[str] = Counter()
    named: dict[str, set[str]] = {}
    known = ctx.known
    for user, joined in ctx.conn.execute(
        f"SELECT user, group_concat(feature, char({ord(_SEPARATOR)})) FROM user_feature "
        "WHERE first_day < ? AND last_day >= ? GROUP BY user",
        (ctx.window.end, ctx.window.start),
    ):
        names = joined.split(_SEPARATOR)
        usage.user_counts[user] = len(names)
        counts.update(names)
        info = known.get(user)
        if info is not None and info.account is not None:
            found = named.get(info.account)
            if found is None:
                named[info.account] = set(names)
            else:
                found.update(names)
    usage.feature_users = counts
    per_account = {account: set(names) for account, names in usage.anonymous.items()}
    for account, names in named.items():
        per_account.setdefault(account, set()).update(names)
    usage.account_features = per_account
    for keys in per_account.values():
        usage.feature_accounts.update(keys)
    usage.feature_events = usage.totals


def _from_pairs(ctx: ReportContext, usage: FeatureUsage) -> None:
    """Everyone's and the population's figures from ``feature_day`` (any window)."""
    population = ctx.population
    per_user: dict[str, set[str]] = {}
    population_events: Counter[str] = Counter()
    for name, user, events in ctx.conn.execute(
        "SELECT feature, user, sum(events) FROM feature_day "
        "WHERE day >= ? AND day < ? AND user != '' GROUP BY feature, user",
        (ctx.window.start, ctx.window.end),
    ):
        found = per_user.get(user)
        if found is None:
            per_user[user] = {name}
        else:
            found.add(name)
        if population is not None and user in population:
            population_events[name] += events
    per_account = {account: set(names) for account, names in usage.anonymous.items()}
    population_accounts: dict[str, set[str]] = {}
    for user, names in per_user.items():
        usage.user_counts[user] = len(names)
        info = ctx.known.get(user)
        account = info.account if info is not None else None
        if account is not None:
            per_account.setdefault(account, set()).update(names)
        if population is None or user in population:
            usage.feature_users.update(names)
            if account is not None:
                population_accounts.setdefault(account, set()).update(names)
    usage.account_features = per_account
    if population is None:
        population_accounts = per_account
        usage.feature_events = usage.totals
    else:
        usage.feature_events = population_events
    for names in population_accounts.values():
        usage.feature_accounts.update(names)


def feature_rows(
    ctx: ReportContext, usage: FeatureUsage, active_users: int
) -> list[dict[str, Any]]:
    """The report's ``features`` list over the population, most events first.

    ``adoption`` is users of the feature / active users in the window (None when there
    are no active users).
    """
    events = usage.feature_events
    wanted = ctx.filters.feature
    ordered = sorted(
        (name for name in events if wanted is None or name == wanted),
        key=lambda name: (-events[name], name),
    )
    return [
        {
            "name": name,
            "events": events[name],
            "users": usage.feature_users[name],
            "accounts": usage.feature_accounts[name],
            "adoption": usage.feature_users[name] / active_users if active_users else None,
        }
        for name in ordered
    ]
