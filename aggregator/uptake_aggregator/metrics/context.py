"""What every metric needs: the window, the known users, their accounts, the population.

The report runs on a read-only connection. When a user or account filter is given, a temp
table (private to the connection, so it works on a read-only database) holds ``pop``, the
users the product figures are narrowed to, so the metric queries join it in SQL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Container
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import msgspec

from uptake.protocol import ReportFilters
from uptake_aggregator.errors import QueryError
from uptake_aggregator.window import Window

__all__ = ["KnownUser", "ReportContext", "known_user_ids", "load_context", "rebind"]


class KnownUser(NamedTuple):
    """A user with an event before ``until``: first active day, last event, account.

    A named tuple: a report builds one per known user, three times faster than a frozen
    dataclass.
    """

    first_day: int
    last_ts: int
    account: str | None


@dataclass
class ReportContext:
    """The shared state of one report.

    ``population`` is None when no user/account filter narrows the report; then every
    known user counts. ``pop_clause(column)`` is the SQL condition restricting a user
    column to the population (empty when unfiltered), for the metric queries.
    """

    conn: sqlite3.Connection
    window: Window
    filters: ReportFilters
    known: dict[str, KnownUser]
    population: frozenset[str] | None
    accounts_seen: list[str] = field(default_factory=list)

    def in_population(self, user: str) -> bool:
        """True when ``user`` counts for the product figures."""
        return self.population is None or user in self.population

    def pop_clause(self, column: str = "user") -> str:
        """SQL ``AND ...`` restricting ``column`` to the population ('' when unfiltered)."""
        if self.population is None:
            return ""
        return f" AND {column} IN (SELECT user FROM temp.pop)"

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


def _known_users(conn: sqlite3.Connection, window: Window) -> dict[str, KnownUser]:
    # First and last active day come from the (user, day) index in order; the last
    # day's row then gives the latest event (no sort over all user-days).
    firsts = conn.execute(
        "SELECT span.user, span.first_day, d.last_ts FROM ("
        " SELECT user, min(day) AS first_day, max(day) AS last_day"
        " FROM user_day INDEXED BY user_day_by_user WHERE day < ? GROUP BY user"
        ") AS span JOIN user_day d ON d.day = span.last_day AND d.user = span.user",
        (window.end,),
    ).fetchall()
    accounts = _latest_accounts(conn, [user for user, _, _ in firsts], window.end)
    return {
        user: KnownUser(first_day, last_ts, accounts.get(user))
        for user, first_day, last_ts in firsts
    }


class _EveryUser:
    """Contains every user id: all stored activity lies before ``until``."""

    def __contains__(self, user: object) -> bool:
        return True


def known_user_ids(conn: sqlite3.Connection, window: Window) -> Container[str]:
    """The ids of the known users (an event before ``until``), without their details.

    For a forked child that starts before ``load_context``. When no activity lies on or
    after ``until`` (a window reaching the latest data, as the default one does) every
    user is known, which one seek of the ``user_day`` key decides.
    """
    [(latest,)] = conn.execute("SELECT max(day) FROM user_day").fetchall()
    if latest is None or latest < window.end:
        return _EveryUser()
    return {
        user
        for (user,) in conn.execute(
            "SELECT DISTINCT user FROM user_day INDEXED BY user_day_by_user WHERE day < ?",
            (window.end,),
        )
    }


def _latest_accounts(conn: sqlite3.Connection, users: list[str], end: int) -> dict[str, str]:
    """Each user's account on their latest day before ``end`` that names one."""
    try:
        # One index seek per known user (the users passed as one JSON array): about half
        # the cost of grouping every (user, day) row.
        rows = conn.execute(
            "SELECT j.value, (SELECT a.account FROM user_account AS a"
            " WHERE a.user = j.value AND a.day < ? ORDER BY a.day DESC LIMIT 1)"
            " FROM json_each(?) AS j",
            (end, msgspec.json.encode(users).decode()),
        ).fetchall()
    except sqlite3.OperationalError:  # an SQLite built without JSON functions
        # SQLite takes the bare column `account` from the row holding max(day).
        rows = [
            (user, account)
            for user, account, _ in conn.execute(
                "SELECT user, account, max(day) FROM user_account WHERE day < ? GROUP BY user",
                (end,),
            )
        ]
    return {user: account for user, account in rows if account is not None}


def load_context(conn: sqlite3.Connection, window: Window, filters: ReportFilters) -> ReportContext:
    """Load known users and accounts, check the filters, and set up the temp tables.

    Raises ``QueryError`` when ``filters.account`` names an account no event named
    before ``until``.
    """
    known = _known_users(conn, window)
    accounts_seen = [
        account
        for (account,) in conn.execute(
            "SELECT DISTINCT account FROM account_day WHERE day < ? ORDER BY account",
            (window.end,),
        )
    ]
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
    _install_temp_tables(conn, population)
    return ReportContext(conn, window, filters, known, population, accounts_seen)


def rebind(ctx: ReportContext, conn: sqlite3.Connection) -> ReportContext:
    """The same context on another connection (its temp tables installed there).

    For a connection opened on the same committed state, e.g. after a fork.
    """
    _install_temp_tables(conn, ctx.population)
    return replace(ctx, conn=conn)


def _install_temp_tables(conn: sqlite3.Connection, population: frozenset[str] | None) -> None:
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS pop (user TEXT PRIMARY KEY)")
    conn.execute("DELETE FROM temp.pop")
    if population is not None:
        conn.executemany("INSERT INTO temp.pop VALUES (?)", [(user,) for user in population])
