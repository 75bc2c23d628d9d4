"""What every metric needs: the window, the known users, their accounts, the population.

The report reads one ``ReportSource`` snapshot. When a user or account filter is given,
``population`` holds the users the product figures are narrowed to, and the source is
restricted to it (``ReportSource.restrict_to``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from uptake.protocol import ReportFilters
from uptake_aggregator.errors import QueryError
from uptake_aggregator.store.reports import KnownUser, ReportSource
from uptake_aggregator.window import Window

__all__ = ["KnownUser", "ReportContext", "load_context", "rebind"]


@dataclass
class ReportContext:
    """The shared state of one report.

    ``population`` is None when no user/account filter narrows the report; then every
    known user counts.
    """

    source: ReportSource
    window: Window
    filters: ReportFilters
    known: dict[str, KnownUser]
    population: frozenset[str] | None
    accounts_seen: list[str] = field(default_factory=list)

    def in_population(self, user: str) -> bool:
        """True when ``user`` counts for the product figures."""
        return self.population is None or user in self.population

    def covers_most_history(self) -> bool:
        """True when the window spans at least a quarter of the days with activity.

        Then reading a whole rollup in the order of a covering per-user index (no sort)
        beats a range of its per-day primary key followed by a sort by user.
        """
        if not self.known:
            return False
        first = min(info.first_day for info in self.known.values())
        span = max(self.window.end - first, 1)
        return self.window.days * 4 >= span

    def population_users(self) -> list[str]:
        """The known users in the population, sorted."""
        if self.population is None:
            return sorted(self.known)
        return sorted(self.population)


def load_context(source: ReportSource, window: Window, filters: ReportFilters) -> ReportContext:
    """Load known users and accounts, check the filters, and restrict ``source``.

    Raises ``QueryError`` when ``filters.account`` names an account no event named
    before ``until``.
    """
    known = source.known_users(window.end)
    accounts_seen = source.accounts_seen(window.end)
    if filters.account is not None and filters.account not in accounts_seen:
        raise QueryError(
            f"unknown account {filters.account!r}: no event names it before "
            f"{window.until.isoformat()}; check the spelling or widen --until"
        )
    population: frozenset[str] | None = None
    if filters.user is not None or filters.account is not None:
        population = frozenset(
            user
            for user, info in known.items()
            if (filters.user is None or user == filters.user)
            and (filters.account is None or info.account == filters.account)
        )
    source.restrict_to(population)
    return ReportContext(source, window, filters, known, population, accounts_seen)


def rebind(ctx: ReportContext, source: ReportSource) -> ReportContext:
    """The same context on another snapshot of the same committed state (after a fork)."""
    source.restrict_to(ctx.population)
    return replace(ctx, source=source)
