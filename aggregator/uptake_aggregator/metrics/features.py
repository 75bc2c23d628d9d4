"""Feature usage per feature, user and account (docs/metrics.md, *Feature usage and adoption*).

A feature event counts for an account through its user: the user's account as of
``until`` (docs/metrics.md, "a user's account"), the same attribution as per-account
active users; an event without a user counts for the account it names.

The store gives each user's features in the window as a set of feature ids
(``ReportSource.feature_sets``: int bit masks, or frozensets where masks would grow too
wide, see ``store.masks``): unions, sizes and per-feature counts are then a few int
operations per user. ``feature_totals`` gives events per feature and the features of
user-less events.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from uptake_aggregator.metrics.context import ReportContext
from uptake_aggregator.store.masks import IdSet, SetAlgebra
from uptake_aggregator.store.reports import FeatureIds

__all__ = ["FeatureUsage", "feature_rows", "feature_usage"]


@dataclass
class FeatureUsage:
    """Feature use in the window.

    Everyone (unfiltered): ``user_counts`` (distinct features per user),
    ``account_features`` (distinct features per account, its breadth), ``totals`` (events per
    feature, all events: its keys are the features with an event in the window). Over the
    report's population (what ``features`` lists): ``feature_users``, ``feature_accounts``,
    ``feature_events``.
    """

    totals: Counter[str] = field(default_factory=Counter)
    anonymous: dict[str, set[str]] = field(default_factory=dict)
    user_counts: dict[str, int] = field(default_factory=dict)
    account_features: dict[str, int] = field(default_factory=dict)
    feature_users: Counter[str] = field(default_factory=Counter)
    feature_accounts: Counter[str] = field(default_factory=Counter)
    feature_events: Counter[str] = field(default_factory=Counter)


def feature_usage(ctx: ReportContext) -> FeatureUsage:
    """Read the window's feature use from ``ctx.source``.

    Without a filter every user is read; with one, only the population and the users of
    the listed accounts (whose rows show the account's full breadth).
    """
    usage = FeatureUsage()
    _read_totals(ctx, usage)
    found = ctx.source.feature_sets(ctx.window, ctx.known, _needed_users(ctx))
    _aggregate(ctx, usage, found.sets, found.ids, found.algebra)
    return usage


def _needed_users(ctx: ReportContext) -> set[str] | None:
    if ctx.population is None:
        return None
    listed = {ctx.filters.account} if ctx.filters.account is not None else set()
    if ctx.filters.user is not None:
        info = ctx.known.get(ctx.filters.user)
        if info is not None and info.account is not None:
            listed.add(info.account)
    members = {user for user, info in ctx.known.items() if info.account in listed}
    return members | ctx.population


def _read_totals(ctx: ReportContext, usage: FeatureUsage) -> None:
    for name, account, events in ctx.source.feature_totals(ctx.window):
        usage.totals[name] += events
        if account:
            usage.anonymous.setdefault(account, set()).add(name)


def _aggregate(
    ctx: ReportContext,
    usage: FeatureUsage,
    sets: dict[str, IdSet],
    ids: FeatureIds,
    algebra: SetAlgebra[IdSet],
) -> None:
    """Per user, per account and (over the population) per feature, from each user's set."""
    population = ctx.population
    known = ctx.known
    empty, size = algebra.empty, algebra.size
    account_sets: dict[str, IdSet] = {}
    for named, names in usage.anonymous.items():  # accounts named by user-less events
        found = empty
        for name in names:
            found = found | algebra.of(ids.of(name))
        account_sets[named] = found
    population_sets: list[IdSet] = []
    population_account_sets: dict[str, IdSet] = {}
    user_counts = usage.user_counts
    for user, used in sets.items():
        user_counts[user] = size(used)
        info = known.get(user)
        account = info.account if info is not None else None
        if account is not None:
            account_sets[account] = account_sets.get(account, empty) | used
        if population is not None and user in population:
            population_sets.append(used)
            if account is not None:
                population_account_sets[account] = (
                    population_account_sets.get(account, empty) | used
                )
    usage.account_features = {account: size(used) for account, used in account_sets.items()}
    if population is None:
        user_ids = algebra.counts(sets.values())
        account_ids = algebra.counts(account_sets.values())
        usage.feature_events = usage.totals
    else:
        user_ids = algebra.counts(population_sets)
        account_ids = algebra.counts(population_account_sets.values())
        usage.feature_events = Counter(ctx.source.population_feature_events(ctx.window))
    usage.feature_users = Counter({ids.names[member]: n for member, n in user_ids.items()})
    usage.feature_accounts = Counter({ids.names[member]: n for member, n in account_ids.items()})


def feature_rows(
    ctx: ReportContext, usage: FeatureUsage, active_users: int, *, every: bool = False
) -> list[dict[str, Any]]:
    """The report's ``features`` list over the population, most events first.

    ``adoption`` is users of the feature / active users in the window (None when there
    are no active users). ``every``: ignore a ``--feature`` filter (list every feature).
    """
    events = usage.feature_events
    wanted = None if every else ctx.filters.feature
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
