"""The read side of a store: what the report (``metrics``) reads, as plain data.

A ``ReportStore`` opens ``ReportSource`` snapshots; a source answers every question of one
report from one committed state of the store, in domain terms (users, days, features,
sessions), never in a backend's tables. Days are UTC day numbers, times µs since the
epoch (``uptake_aggregator.units``); day ranges are half-open ``[start, end)``.

"The population" is what ``ReportSource.restrict_to`` set: the users a user/account filter
narrows the product figures to (every user when None). Methods say whether they answer
over the population or over every user.

Example::

    source = open_store(path).report_store().report_source()
    try:
        known = source.known_users(window.end)
    finally:
        source.close()
"""

from __future__ import annotations

from collections.abc import Collection, Container, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from uptake_aggregator.store.masks import SetAlgebra
from uptake_aggregator.window import Window

__all__ = [
    "FeatureIds",
    "FeatureSets",
    "KnownUser",
    "ReportSource",
    "ReportStore",
    "SessionSpans",
    "UserActivity",
]


class KnownUser(NamedTuple):
    """A user with an event before ``until``: first active day, last event, account.

    A named tuple: a report builds one per known user, three times faster than a frozen
    dataclass.
    """

    first_day: int
    last_ts: int
    account: str | None


class UserActivity(NamedTuple):
    """One user's activity over the window.

    Active days, login events, days with a login, the last active day, and active days
    per week packed in one integer: ``WEEK_BITS`` bits for week k after the window's
    first Monday at bit ``WEEK_BITS * k`` (0 when the window has too many weeks to pack,
    see ``Window.weeks_packable``). A named tuple: a report builds one per active user,
    three times faster than a frozen dataclass.
    """

    active_days: int
    logins: int
    login_days: int
    last_day: int = -1
    week_days: int = 0


#: Per user (count, total µs), and every duration (µs, in no order), of some sessions.
#: Durations are floats: integer µs below 2**53 are exact as floats, and Python compares
#: and sorts floats about twice as fast as ints above 2**30 (any session over 18 minutes).
SessionSpans = tuple[dict[str, tuple[int, int]], list[float]]


class FeatureIds:
    """Feature names and their ids (a feature's bit in a mask); a new name gets the next id."""

    def __init__(self, names: dict[int, str]) -> None:
        self.names = names
        self._ids = {name: feature_id for feature_id, name in names.items()}
        #: The highest id the store holds (0 without any).
        self.highest = max(names, default=0)
        self._next = self.highest + 1

    def of(self, name: str) -> int:
        """The id of ``name`` (its bit in a mask)."""
        found = self._ids.get(name)
        if found is None:  # e.g. a feature only user-less events used
            found = self._ids[name] = self._next
            self.names[found] = name
            self._next += 1
        return found


@dataclass
class FeatureSets:
    """Each user's features used in the window, as id sets of ``algebra`` (see ``masks``)."""

    sets: dict[str, Any]
    ids: FeatureIds
    algebra: SetAlgebra[Any]


class ReportSource(Protocol):
    """One consistent read snapshot of a store, for one report; ``close`` it after."""

    def events_stored(self) -> int:
        """Distinct events stored in this snapshot.

        It changes with every commit that stores an event, so two snapshots with the same
        count hold the same data (the forked report compares them).
        """
        ...

    def restrict_to(self, population: frozenset[str] | None) -> None:
        """Set the population later calls answer over (None: every user)."""
        ...

    def known_users(self, end_day: int) -> dict[str, KnownUser]:
        """Every user with an event before ``end_day``, with their latest account then."""
        ...

    def known_user_ids(self, end_day: int) -> Container[str]:
        """The ids of the users ``known_users`` would return, without their details."""
        ...

    def accounts_seen(self, end_day: int) -> list[str]:
        """Accounts any event named before ``end_day``, sorted."""
        ...

    def daily_active_users(self, start_day: int, end_day: int) -> dict[int, int]:
        """Distinct active users of the population per day (days without any left out)."""
        ...

    def active_user_count(self, start_day: int, end_day: int) -> int:
        """Distinct users of the population active on some day of the range."""
        ...

    def active_day_counts(self, start_day: int, end_day: int) -> dict[int, int]:
        """Users of the population by their number of active days in the range.

        ``{k: users}``: how many users of the population have events on exactly ``k``
        distinct days of ``[start_day, end_day)`` (k >= 1; counts of 0 left out). The
        ``power_users`` curves (docs/metrics.md, *Engagement*).
        """
        ...

    def users_active_between(self, start_day: int, end_day: int) -> set[str]:
        """Every user (not just the population) active on some day of the range."""
        ...

    def user_activity(self, window: Window, *, most_history: bool) -> dict[str, UserActivity]:
        """Activity in the window of every user active in it (not just the population).

        ``most_history``: the window spans most of the stored days (a hint for the plan).
        """
        ...

    def feature_totals(self, window: Window) -> list[tuple[str, str, int]]:
        """(feature, account named by user-less events or '', events) in the window."""
        ...

    def feature_sets(
        self, window: Window, known: Collection[str], users: set[str] | None
    ) -> FeatureSets:
        """Each user's features used in the window (only ``users``, unless None).

        ``known``: the known users (their number bounds the sets' memory).
        """
        ...

    def population_feature_events(self, window: Window) -> dict[str, int]:
        """Events per feature in the window by users of the population."""
        ...

    def seat_events(self, end_us: int) -> Iterable[tuple[str, int, int]]:
        """(account, ts, seats) of every seats event before ``end_us``, by account then time."""
        ...

    def daily_logins(
        self, window: Window, members: list[tuple[str, str]]
    ) -> dict[str, dict[int, int]]:
        """Per account and window day: its users (``members``: (user, account)) with a login."""
        ...

    def integration_uses(self, window: Window, *, most_history: bool) -> set[tuple[str, str, str]]:
        """Distinct (user or '', event account or '', integration) in the window."""
        ...

    def cohort_active_weeks(
        self, cohorts: dict[int, list[str]], end_day: int
    ) -> dict[tuple[int, int], int]:
        """Active users per (cohort Monday, week offset), activity before ``end_day``.

        ``cohorts`` maps a cohort's Monday (day number) to its users.
        """
        ...

    def feature_user_days(self, start_day: int, end_day: int) -> dict[str, int]:
        """Per feature, the distinct (user, day) pairs of its use by the population.

        Over the days ``[start_day, end_day)``: the sum over those days of the feature's
        distinct daily users (a feature's mean daily users over a span is this / the
        span's days; over the window, its mean days of use per user is this / its users).
        Events without a user count for nothing here; features only such events used
        are left out.
        """
        ...

    def first_values(
        self, users: Collection[str], features: Collection[str], end_day: int
    ) -> dict[str, tuple[int, int | None]]:
        """Per user of ``users`` with an event before ``end_day``: their first times.

        (ts of the user's first event ever, ts of their first ``feature`` event naming one
        of ``features``, or None when there is none before ``end_day``): time to first
        value (docs/metrics.md, *Activation*).
        """
        ...

    def releases(self, window: Window) -> list[tuple[int, str]]:
        """(ts, version) of the releases in the window, in time order."""
        ...

    def sessions(self, window: Window, known: Container[str]) -> tuple[SessionSpans, SessionSpans]:
        """The explicit and the implicit sessions of the population starting in the window.

        Explicit: session ids, of users in ``known``. Implicit: 30-minute-gap runs of the
        session-less events outside every explicit session's 30-minute margin (one
        method: a backend reads the explicit sessions once for both).
        """
        ...

    def close(self) -> None:
        """Release the snapshot."""
        ...


class ReportStore(Protocol):
    """Where a report reads from: opens snapshots."""

    #: True when a forked child may open its own snapshot while the parent holds none
    #: (``metrics.parallel``): the backend's client survives a fork that way.
    forks: bool

    def report_source(self) -> ReportSource:
        """Open a read snapshot of the committed state."""
        ...
