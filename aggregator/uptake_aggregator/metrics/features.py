"""Feature usage: per feature, per user, per account, from the feature rollups.

Reads ``user_features`` (one packed blob per active user-day: the features used and their
event counts) and ``feature_totals`` (events per day and feature; the account of
user-less events). A feature event counts for an account through its user: the user's
account as of ``until`` (DESIGN §5 "a user's account"), the same attribution as
per-account active users; an event without a user counts for the account it names.
Features are handled by their 64-bit name hash and named only for output.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from uptake_aggregator.feature_codec import feature_hash, unpack_feature_counts
from uptake_aggregator.metrics.context import ReportContext

__all__ = ["FeatureUsage", "feature_rows", "feature_usage"]


@dataclass
class FeatureUsage:
    """Feature use in the window.

    ``per_user``: feature hashes each user used; ``anonymous``: per account, hashes of
    features used by events with no user that name the account; ``totals``: events per
    feature hash over all events; ``names``: hash -> feature name.
    """

    per_user: dict[str, set[int]] = field(default_factory=dict)
    user_events: dict[str, Counter[int]] = field(default_factory=dict)
    anonymous: dict[str, set[int]] = field(default_factory=dict)
    totals: Counter[int] = field(default_factory=Counter)
    names: dict[int, str] = field(default_factory=dict)
    _per_account: dict[str, set[int]] | None = field(default=None, repr=False)

    def account_features(self, ctx: ReportContext) -> dict[str, set[int]]:
        """Distinct features per account (members' use plus user-less events), unfiltered."""
        if self._per_account is None:
            self._per_account = self._account_features(ctx)
        return self._per_account

    def _account_features(self, ctx: ReportContext) -> dict[str, set[int]]:
        per_account: dict[str, set[int]] = {
            account: set(hashes) for account, hashes in self.anonymous.items()
        }
        for user, hashes in self.per_user.items():
            info = ctx.known.get(user)
            if info is not None and info.account is not None:
                found = per_account.get(info.account)
                if found is None:
                    per_account[info.account] = set(hashes)
                else:
                    found |= hashes
        return per_account


def feature_usage(ctx: ReportContext, conn: sqlite3.Connection | None = None) -> FeatureUsage:
    """Read the window's feature use: one row per active user-day plus small totals.

    Per-user event counts are decoded only for users in a filtered population (the
    product-wide counts come from ``feature_totals``). ``conn`` is another connection on
    the same snapshot, to run this alongside the other metrics (it uses no temp table).
    """
    usage = FeatureUsage()
    if conn is None:
        conn = ctx.conn
    window = (ctx.window.start, ctx.window.end)
    for name, account, events in conn.execute(
        "SELECT feature, account, sum(events) FROM feature_totals "
        "WHERE day >= ? AND day < ? GROUP BY feature, account",
        window,
    ):
        key = feature_hash(name)
        usage.names[key] = name
        usage.totals[key] += events
        if account:
            usage.anonymous.setdefault(account, set()).add(key)
    population = ctx.population
    # Collect each user's blobs and decode them together: a few C-level calls per user
    # rather than Python work per user-day.
    blobs: dict[str, list[bytes]] = {}
    for user, blob in conn.execute(
        "SELECT user, features FROM user_features WHERE day >= ? AND day < ?", window
    ):
        found = blobs.get(user)
        if found is None:
            blobs[user] = [blob]
        else:
            found.append(blob)
    for user, parts in blobs.items():
        flat = unpack_feature_counts(b"".join(parts))
        usage.per_user[user] = set(flat[0::2])
        if population is not None and user in population:
            counts: Counter[int] = Counter()
            for key, events in zip(flat[0::2], flat[1::2], strict=True):
                counts[key] += events
            usage.user_events[user] = counts
    return usage


def feature_rows(
    ctx: ReportContext, usage: FeatureUsage, active_users: int
) -> list[dict[str, Any]]:
    """The report's ``features`` list over the population, most events first.

    ``adoption`` is users of the feature / active users in the window (None when there
    are no active users).
    """
    users: Counter[int] = Counter()
    accounts: Counter[int] = Counter()
    if ctx.population is None:
        events = usage.totals
        for hashes in usage.per_user.values():
            users.update(hashes)
        for hashes in usage.account_features(ctx).values():
            accounts.update(hashes)
    else:
        events = Counter()
        per_account: dict[str, set[int]] = {}
        for user in ctx.population:
            used = usage.per_user.get(user)
            if used is None:
                continue
            users.update(used)
            events.update(usage.user_events.get(user, Counter()))
            account = ctx.known[user].account
            if account is not None:
                per_account.setdefault(account, set()).update(used)
        for hashes in per_account.values():
            accounts.update(hashes)
    wanted = ctx.filters.feature
    ordered = sorted(
        (key for key in events if wanted is None or usage.names[key] == wanted),
        key=lambda key: (-events[key], usage.names[key]),
    )
    return [
        {
            "name": usage.names[key],
            "events": events[key],
            "users": users[key],
            "accounts": accounts[key],
            "adoption": users[key] / active_users if active_users else None,
        }
        for key in ordered
    ]
