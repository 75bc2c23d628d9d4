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
  reaching the start of the data, and SQLite counts everything in C.
- Otherwise ``user_features`` (one packed blob per active user-day: feature hashes and
  event counts), decoded per user in Python.

``feature_totals`` gives events per feature and the features of user-less events.
Features are keyed by their 64-bit name hash and named only for output.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from uptake_aggregator.feature_codec import feature_hash, unpack_feature_counts
from uptake_aggregator.metrics.context import ReportContext

__all__ = ["FeatureUsage", "feature_rows", "feature_usage"]


@dataclass
class FeatureUsage:
    """Feature use in the window.

    Everyone (unfiltered): ``user_counts`` (distinct features per user),
    ``account_features`` (distinct feature hashes per account), ``totals`` (events per
    feature, all events). Over the report's population (what ``features`` lists):
    ``feature_users``, ``feature_accounts``, ``feature_events``. ``names``: hash -> name.
    """

    names: dict[int, str] = field(default_factory=dict)
    totals: Counter[int] = field(default_factory=Counter)
    anonymous: dict[str, set[int]] = field(default_factory=dict)
    user_counts: dict[str, int] = field(default_factory=dict)
    account_features: dict[str, set[int]] = field(default_factory=dict)
    feature_users: Counter[int] = field(default_factory=Counter)
    feature_accounts: Counter[int] = field(default_factory=Counter)
    feature_events: Counter[int] = field(default_factory=Counter)


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
    separable = not any(_SEPARATOR in name for name in usage.names.values())
    if ctx.population is None and not straddles and separable:
        _from_spans(ctx, usage)
    else:
        _from_blobs(ctx, usage)
    return usage


def _read_totals(ctx: ReportContext, usage: FeatureUsage) -> None:
    for name, account, events in ctx.conn.execute(
        "SELECT feature, account, sum(events) FROM feature_totals "
        "WHERE day >= ? AND day < ? GROUP BY feature, account",
        (ctx.window.start, ctx.window.end),
    ):
        key = feature_hash(name)
        usage.names[key] = name
        usage.totals[key] += events
        if account:
            usage.anonymous.setdefault(account, set()).add(key)


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
    for name, users in counts.items():
        usage.feature_users[feature_hash(name)] = users
    per_account = {account: set(keys) for account, keys in usage.anonymous.items()}
    for account, names in named.items():
        per_account.setdefault(account, set()).update(feature_hash(name) for name in names)
    usage.account_features = per_account
    for keys in per_account.values():
        usage.feature_accounts.update(keys)
    usage.feature_events = usage.totals


def _from_blobs(ctx: ReportContext, usage: FeatureUsage) -> None:
    """Everyone's and the population's figures from the per-user-day blobs."""
    population = ctx.population
    # Collect each user's blobs and decode them together: a few C-level calls per user
    # rather than Python work per user-day.
    blobs: dict[str, list[bytes]] = {}
    for user, blob in ctx.conn.execute(
        "SELECT user, features FROM user_features WHERE day >= ? AND day < ?",
        (ctx.window.start, ctx.window.end),
    ):
        found = blobs.get(user)
        if found is None:
            blobs[user] = [blob]
        else:
            found.append(blob)
    per_account = {account: set(keys) for account, keys in usage.anonymous.items()}
    population_accounts: dict[str, set[int]] = {}
    for user, parts in blobs.items():
        flat = unpack_feature_counts(b"".join(parts))
        keys = set(flat[0::2])
        usage.user_counts[user] = len(keys)
        info = ctx.known.get(user)
        account = info.account if info is not None else None
        if account is not None:
            per_account.setdefault(account, set()).update(keys)
        if population is None or user in population:
            usage.feature_users.update(keys)
            if account is not None:
                population_accounts.setdefault(account, set()).update(keys)
            if population is not None:
                for key, events in zip(flat[0::2], flat[1::2], strict=True):
                    usage.feature_events[key] += events
    usage.account_features = per_account
    if population is None:
        population_accounts = per_account
        usage.feature_events = usage.totals
    for keys in population_accounts.values():
        usage.feature_accounts.update(keys)


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
        (key for key in events if wanted is None or usage.names[key] == wanted),
        key=lambda key: (-events[key], usage.names[key]),
    )
    return [
        {
            "name": usage.names[key],
            "events": events[key],
            "users": usage.feature_users[key],
            "accounts": usage.feature_accounts[key],
            "adoption": usage.feature_users[key] / active_users if active_users else None,
        }
        for key in ordered
    ]
