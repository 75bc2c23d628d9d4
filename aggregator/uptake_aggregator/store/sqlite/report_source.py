"""``SqliteReportSource``: the report's reads (``store.reports.ReportSource``) in SQLite.

Every figure of the report comes from the rollups (``schema``), never from raw events,
on one read-only connection inside one read transaction. The population (a user or
account filter) sits in a temp table, private to the connection (so it works on a
read-only database), that the queries join.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Container, Iterable
from typing import Any, Final

import msgspec

from uptake_aggregator.store.masks import BitMasks, IdSets, SetAlgebra
from uptake_aggregator.store.reports import (
    FeatureIds,
    FeatureSets,
    KnownUser,
    SessionSpans,
    UserActivity,
)
from uptake_aggregator.store.sqlite.readonly import events_stored
from uptake_aggregator.store.sqlite.sessions import (
    SessionScope,
    session_spans,
)
from uptake_aggregator.units import DAY_US
from uptake_aggregator.window import WEEK_BITS, Window

__all__ = ["SqliteReportSource"]

#: Upper bound on the read-only connection's memory map (4 GiB).
_MMAP_BYTES: Final = 1 << 32
_POP: Final = " AND user IN (SELECT user FROM temp.pop)"
#: Masks (one per user) are used while users x (highest feature id + 1) stays under this
#: many bits (64 MiB): 10k users and 50k features, or 1M users and 500 features.
_MAX_MASK_BITS: Final = 1 << 29
#: Up to this many straddling (user, feature) pairs are checked one by one (a few index
#: seeks per window day each); beyond it the window's ``feature_day`` rows are scanned.
_MAX_STRADDLERS: Final = 20_000
#: Separates user ids in one ``group_concat`` value (the ASCII record separator).
_SEPARATOR: Final = "\x1e"
#: Weeks a per-user bit mask can hold without reaching SQLite's 64-bit sign bit.
_MASK_WEEKS: Final = 62
#: Ranges longer than this many days find their active users through ``user_span``, a
#: seek per user, rather than a distinct pass over the range's ``user_day`` rows
#: (measured on 10M events: even at 7 days, 14-16 ms both ways).
_SEEK_DAYS: Final = 7


class _EveryUser:
    """Contains every user id: all stored activity lies before ``until``."""

    def __contains__(self, user: object) -> bool:
        return True


class SqliteReportSource:
    """One read transaction on a read-only connection (see ``ReportSource``)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        conn.execute("PRAGMA temp_store = MEMORY")
        # Memory-mapped reads skip a copy of every page into SQLite's cache: measured
        # ~5% off a 10M-event report. SQLite caps the size at its compile-time limit.
        conn.execute(f"PRAGMA mmap_size = {_MMAP_BYTES}")
        # One read transaction: every query sees the same committed state.
        conn.execute("BEGIN")
        self._pop = ""

    def close(self) -> None:
        """Close the connection (the read transaction ends with it)."""
        self.conn.close()

    def events_stored(self) -> int:
        """The running counter inside this read transaction."""
        return events_stored(self.conn)

    def restrict_to(self, population: frozenset[str] | None) -> None:
        """Fill the ``pop`` temp table; the population queries join it when set."""
        conn = self.conn
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS pop (user TEXT PRIMARY KEY)")
        conn.execute("DELETE FROM temp.pop")
        if population is not None:
            conn.executemany("INSERT INTO temp.pop VALUES (?)", [(user,) for user in population])
        self._pop = "" if population is None else _POP

    # -- users and accounts ---------------------------------------------------------------

    def known_users(self, end_day: int) -> dict[str, KnownUser]:
        """First day and latest event from ``user_span``, accounts from ``user_account``.

        A user active on or after ``end_day`` gets their latest event before it from
        ``user_day`` (one index seek each); when most users are, one GROUP BY over
        ``user_day`` answers instead.
        """
        conn = self.conn
        firsts = conn.execute(
            "SELECT user, first_day, CASE WHEN last_day < :end THEN last_ts END"
            " FROM user_span WHERE first_day < :end",
            {"end": end_day},
        ).fetchall()
        later = sum(1 for _, _, last_ts in firsts if last_ts is None)
        if later * 4 > len(firsts):
            # First and last active day come from the (user, day) index in order; the last
            # day's row then gives the latest event (no sort over all user-days).
            firsts = conn.execute(
                "SELECT span.user, span.first_day, d.last_ts FROM ("
                " SELECT user, min(day) AS first_day, max(day) AS last_day"
                " FROM user_day INDEXED BY user_day_by_user WHERE day < ? GROUP BY user"
                ") AS span JOIN user_day d ON d.day = span.last_day AND d.user = span.user",
                (end_day,),
            ).fetchall()
        elif later:
            firsts = [
                (user, first_day, last_ts if last_ts is not None else self._last_ts(user, end_day))
                for user, first_day, last_ts in firsts
            ]
        accounts = self._latest_accounts([user for user, _, _ in firsts], end_day)
        return {
            user: KnownUser(first_day, last_ts, accounts.get(user))
            for user, first_day, last_ts in firsts
        }

    def _last_ts(self, user: str, end_day: int) -> int:
        """The ts of ``user``'s latest event before ``end_day`` (they have one)."""
        [(last_ts,)] = self.conn.execute(
            "SELECT d.last_ts FROM user_day AS d WHERE d.user = :user AND d.day = ("
            " SELECT max(day) FROM user_day INDEXED BY user_day_by_user"
            " WHERE user = :user AND day < :end)",
            {"user": user, "end": end_day},
        ).fetchall()
        return int(last_ts)

    def _latest_accounts(self, users: list[str], end: int) -> dict[str, str]:
        """Each user's account on their latest day before ``end`` that names one."""
        conn = self.conn
        try:
            # One index seek per known user (the users passed as one JSON array): about
            # half the cost of grouping every (user, day) row.
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

    def known_user_ids(self, end_day: int) -> Container[str]:
        """When no activity lies on or after ``end_day``, every user: one key seek decides."""
        [(latest,)] = self.conn.execute("SELECT max(day) FROM user_day").fetchall()
        if latest is None or latest < end_day:
            return _EveryUser()
        return {
            user
            for (user,) in self.conn.execute(
                "SELECT DISTINCT user FROM user_day INDEXED BY user_day_by_user WHERE day < ?",
                (end_day,),
            )
        }

    def accounts_seen(self, end_day: int) -> list[str]:
        """From ``account_day``."""
        return [
            account
            for (account,) in self.conn.execute(
                "SELECT DISTINCT account FROM account_day WHERE day < ? ORDER BY account",
                (end_day,),
            )
        ]

    # -- activity -------------------------------------------------------------------------

    def daily_active_users(self, start_day: int, end_day: int) -> dict[int, int]:
        """``user_day`` rows per day."""
        rows = self.conn.execute(
            f"SELECT day, count(*) FROM user_day WHERE day >= ? AND day < ?{self._pop} "
            "GROUP BY day",
            (start_day, end_day),
        )
        return dict(rows)

    def active_user_count(self, start_day: int, end_day: int) -> int:
        """Distinct users of ``user_day`` rows in the range."""
        row = self.conn.execute(
            f"SELECT count(DISTINCT user) FROM user_day WHERE day >= ? AND day < ?{self._pop}",
            (start_day, end_day),
        ).fetchone()
        return int(row[0])

    def active_day_counts(self, start_day: int, end_day: int) -> dict[int, int]:
        """``user_day`` rows per user, counted per number of rows, all in SQL.

        Only the histogram leaves SQLite (at most one row per day of the range), not a
        row per user.
        """
        return dict(
            self.conn.execute(
                "SELECT days, count(*) FROM (SELECT count(*) AS days FROM user_day"
                f" WHERE day >= ? AND day < ?{self._pop} GROUP BY user) GROUP BY days",
                (start_day, end_day),
            )
        )

    def users_active_between(self, start_day: int, end_day: int) -> set[str]:
        """Distinct users of ``user_day`` rows in the range.

        Past a week: each user whose ``user_span`` overlaps the range, with one seek into
        the (user, day) index to check they were active in it (~10k seeks for 10M
        events); a distinct pass over the range's rows costs more from there on
        (measured on 10M events: 30 days 40-60 -> 15-26 ms of CPU).
        """
        if end_day - start_day > _SEEK_DAYS:
            rows = self.conn.execute(
                "SELECT u.user FROM user_span AS u WHERE u.last_day >= :start"
                " AND u.first_day < :end AND EXISTS (SELECT 1 FROM user_day AS d"
                " INDEXED BY user_day_by_user WHERE d.user = u.user AND d.day >= :start"
                " AND d.day < :end)",
                {"start": start_day, "end": end_day},
            )
        else:
            rows = self.conn.execute(
                "SELECT DISTINCT user FROM user_day WHERE day >= ? AND day < ?",
                (start_day, end_day),
            )
        return {user for (user,) in rows}

    def user_activity(self, window: Window, *, most_history: bool) -> dict[str, UserActivity]:
        """One pass over ``user_day``; SQLite sums the packed active days per week too.

        Over most of the history, the whole (user, day, logins) index in order. Over a
        shorter window, each ``user_span`` user's range of that index: the same rows,
        grouped by user without the sort a range of the (day, user) key needs (30 days
        of 10M events: ~140 -> ~95 ms of CPU).
        """
        weeks = f"sum(1 << ((day - :monday) / 7 * {WEEK_BITS}))" if window.weeks_packable else "0"
        if most_history:
            # The (user, day, logins) index covers the query and comes grouped by user.
            source, user = "user_day INDEXED BY user_day_by_user", "user"
        else:
            source = (
                "user_span AS u CROSS JOIN user_day AS d INDEXED BY user_day_by_user"
                " ON d.user = u.user"
            )
            user = "u.user"
        rows = self.conn.execute(
            f"SELECT {user}, count(*), sum(logins), sum(logins > 0), max(day), {weeks} "
            f"FROM {source} WHERE day >= :start AND day < :end GROUP BY {user}",
            {"start": window.start, "end": window.end, "monday": window.first_monday},
        )
        return {
            user: UserActivity(days, logins, login_days, last_day, weeks)
            for user, days, logins, login_days, last_day, weeks in rows
        }

    # -- features -------------------------------------------------------------------------

    def feature_totals(self, window: Window) -> list[tuple[str, str, int]]:
        """From ``feature_totals``."""
        return self.conn.execute(
            "SELECT feature, account, sum(events) FROM feature_totals "
            "WHERE day >= ? AND day < ? GROUP BY feature, account",
            (window.start, window.end),
        ).fetchall()

    def population_feature_events(self, window: Window) -> dict[str, int]:
        """From ``feature_day``, joined with the population."""
        return dict(
            self.conn.execute(
                "SELECT feature, sum(events) FROM feature_day WHERE day >= ? AND day < ? "
                "AND user IN (SELECT user FROM temp.pop) GROUP BY feature",
                (window.start, window.end),
            )
        )

    def feature_sets(
        self, window: Window, known: Collection[str], users: set[str] | None
    ) -> FeatureSets:
        """Each user's features in the window, two ways to the same sets.

        - ``user_feature`` (one row per (user, feature): first and last day of use). A
          pair that does not straddle the window (first use before ``since`` and last use
          at or after ``until``) was used in it exactly when its first use is before
          ``until`` and its last use at or after ``since``: SQLite sums those pairs' bits
          into one mask per user and 64-bit word, in key order. Straddling pairs, few for
          the usual windows (the default one ending tomorrow has none; one reaching the
          start of the data has none), are checked one by one with index seeks into
          ``feature_day``.
        - When there are many straddling pairs (a window in the middle of the history):
          ``feature_day`` rows of the window's days, distinct (feature, user).
        """
        conn = self.conn
        ids = FeatureIds(dict(conn.execute("SELECT id, name FROM features")))
        restrict = ""
        if users is not None:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS need (user TEXT PRIMARY KEY)")
            conn.execute("DELETE FROM temp.need")
            conn.executemany("INSERT INTO temp.need VALUES (?)", [(user,) for user in users])
            restrict = "temp.need AS n CROSS JOIN "
        # A mask is as wide as the highest feature id: past a bound on all masks together
        # (ids made up on the fly, such as a feature name per document), sets of ids.
        algebra: SetAlgebra[Any]
        if (ids.highest + 1) * max(len(known), 1) <= _MAX_MASK_BITS:
            algebra = BitMasks()
        else:
            algebra = IdSets()
        on = "ON f.user = n.user " if restrict else ""
        few = self._straddlers_at_most(window.end) <= _MAX_STRADDLERS
        if not few:
            few = (
                len(
                    conn.execute(
                        f"SELECT 1 FROM {restrict}user_feature AS f {on}"
                        "WHERE f.first_day < ? AND f.last_day >= ? LIMIT ?",
                        (window.start, window.end, _MAX_STRADDLERS + 1),
                    ).fetchall()
                )
                <= _MAX_STRADDLERS
            )
        if few:
            sets, straddlers = self._sets_from_spans(window, restrict, algebra, ids)
            empty = algebra.empty
            for user, name in self._used_in_window(window, straddlers):
                sets[user] = sets.get(user, empty) | algebra.of(ids.of(name))
        else:
            sets = self._sets_from_pairs(window, known, bool(restrict), ids, algebra)
        return FeatureSets(sets, ids, algebra)

    def _used_in_window(
        self, window: Window, pairs: list[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        """Which (user, feature) pairs have a ``feature_day`` row on some window day."""
        if not pairs:
            return []
        conn = self.conn
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS straddle (user TEXT, feature TEXT)")
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS window_day (day INTEGER PRIMARY KEY)")
        conn.execute("DELETE FROM temp.straddle")
        conn.execute("DELETE FROM temp.window_day")
        conn.executemany("INSERT INTO temp.straddle VALUES (?, ?)", pairs)
        conn.executemany(
            "INSERT INTO temp.window_day VALUES (?)",
            [(day,) for day in range(window.start, window.end)],
        )
        return conn.execute(
            "SELECT s.user, s.feature FROM temp.straddle AS s WHERE EXISTS ("
            " SELECT 1 FROM temp.window_day AS w CROSS JOIN feature_day AS d"
            " ON d.day = w.day AND d.feature = s.feature AND d.user = s.user)"
        ).fetchall()

    def _straddlers_at_most(self, end_day: int) -> int:
        """An upper bound on the (user, feature) pairs used on or after ``end_day``.

        Those hold every pair straddling a window ending there: the distinct users of
        each (day, feature) from ``feature_day_users``, summed over the days from
        ``end_day`` on (a few rows, or none for a window ending after every event).
        """
        [(bound,)] = self.conn.execute(
            "SELECT coalesce(sum(users), 0) FROM feature_day_users WHERE day >= ?", (end_day,)
        ).fetchall()
        return int(bound)

    def _sets_from_spans(
        self, window: Window, restrict: str, algebra: SetAlgebra[Any], ids: FeatureIds
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """Feature sets per user from ``user_feature`` without the straddling pairs, and those.

        One pass over ``user_feature`` (in key order, no sort): SQLite sums the bits of
        the pairs that do not straddle the window per (user, word) and lists the bits of
        those that do (measured on 10M events: a separate pass for the straddlers took
        40-75 ms of CPU). ``restrict`` joins the ``need`` temp table to read only those
        users.
        """
        on = "ON f.user = n.user " if restrict else ""
        sets: dict[str, Any] = {}
        straddlers: list[tuple[str, str]] = []
        empty, of_word, names = algebra.empty, algebra.of_word, ids.names
        for user, word, bits, straddling in self.conn.execute(
            "SELECT f.user, f.word,"
            " sum(CASE WHEN f.first_day >= :since OR f.last_day < :until THEN 1 << f.bit END),"
            " group_concat(CASE WHEN f.first_day < :since AND f.last_day >= :until"
            f" THEN f.bit END) FROM {restrict}user_feature AS f {on}"
            "WHERE f.first_day < :until AND f.last_day >= :since GROUP BY f.user, f.word",
            {"since": window.start, "until": window.end},
        ):
            if bits is not None:
                sets[user] = sets.get(user, empty) | of_word(word, bits)
            if straddling is not None:
                straddlers += [
                    (user, names[(word << 6) | int(bit)]) for bit in straddling.split(",")
                ]
        return sets, straddlers

    def _sets_from_pairs(
        self,
        window: Window,
        known: Collection[str],
        restricted: bool,
        ids: FeatureIds,
        algebra: SetAlgebra[Any],
    ) -> dict[str, Any]:
        """Feature sets per user from ``feature_day`` over the window's days (any window).

        SQLite joins each (day, feature)'s users in primary-key order (no sort, no
        DISTINCT over every row: measured 1.25 s -> 0.3 s for a month of 10M events);
        Python merges the days with C-level set unions. User ids holding the separator:
        row by row.
        """
        only = " AND user IN (SELECT user FROM temp.need)" if restricted else ""
        where = f"WHERE day >= ? AND day < ? AND user != ''{only}"
        days = (window.start, window.end)
        users_by_feature: dict[str, set[str]] = {}
        if any(_SEPARATOR in user for user in known):
            for name, user in self.conn.execute(
                f"SELECT DISTINCT feature, user FROM feature_day {where}", days
            ):
                users_by_feature.setdefault(name, set()).add(user)
        else:
            for name, joined in self.conn.execute(
                f"SELECT feature, group_concat(user, char({ord(_SEPARATOR)})) FROM feature_day "
                f"{where} GROUP BY day, feature",
                days,
            ):
                found_users = users_by_feature.get(name)
                if found_users is None:
                    users_by_feature[name] = set(joined.split(_SEPARATOR))
                else:
                    found_users.update(joined.split(_SEPARATOR))
        sets: dict[str, Any] = {}
        empty = algebra.empty
        for name, users in users_by_feature.items():
            member = algebra.of(ids.of(name))
            for user in users:
                sets[user] = sets.get(user, empty) | member
        return sets

    # -- accounts -------------------------------------------------------------------------

    def seat_events(self, end_us: int) -> Iterable[tuple[str, int, int]]:
        """From ``seats``, in (account, ts, id) order."""
        return self.conn.execute(
            "SELECT account, ts, seats FROM seats WHERE ts < ? ORDER BY account, ts, id",
            (end_us,),
        )

    def daily_logins(
        self, window: Window, members: list[tuple[str, str]]
    ) -> dict[str, dict[int, int]]:
        """Walks only these users, through the (user, day) index of ``user_day``."""
        if not members:
            return {}
        conn = self.conn
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS seat_users (user TEXT PRIMARY KEY, account)")
        conn.execute("DELETE FROM temp.seat_users")
        conn.executemany("INSERT INTO temp.seat_users VALUES (?, ?)", members)
        daily: dict[str, dict[int, int]] = {}
        rows = conn.execute(
            "SELECT s.account, d.day, count(*) FROM temp.seat_users s CROSS "
            "JOIN user_day d INDEXED BY user_day_by_user "
            "ON d.user = s.user AND d.day >= ? AND d.day < ? "
            "WHERE d.logins > 0 GROUP BY s.account, d.day",
            (window.start, window.end),
        )
        for account, day, logged_in in rows:
            daily.setdefault(account, {})[day] = logged_in
        return daily

    def integration_uses(self, window: Window, *, most_history: bool) -> set[tuple[str, str, str]]:
        """From ``integration_day``."""
        # The (user, account, integration, day) index covers the query, already in order.
        index = "INDEXED BY integration_day_by_user " if most_history else ""
        rows = self.conn.execute(
            f"SELECT DISTINCT user, account, integration FROM integration_day {index}"
            "WHERE day >= ? AND day < ?",
            (window.start, window.end),
        )
        return set(rows)

    def feature_user_days(self, start_day: int, end_day: int) -> dict[str, int]:
        """Distinct users per (day, feature), summed per feature.

        Unfiltered: the ``feature_day_users`` rollup, one row per (day, feature). Over a
        population: distinct users of ``feature_day`` rows per (day, feature); that GROUP
        BY walks the primary key (day, feature, user, account) in order, so it needs no
        sort (a user under two accounts on a day counts once).
        """
        if not self._pop:
            return dict(
                self.conn.execute(
                    "SELECT feature, sum(users) FROM feature_day_users"
                    " WHERE day >= ? AND day < ? GROUP BY feature",
                    (start_day, end_day),
                )
            )
        totals: dict[str, int] = {}
        for name, users in self.conn.execute(
            "SELECT feature, count(DISTINCT user) FROM feature_day"
            f" WHERE day >= ? AND day < ? AND user != ''{_POP} GROUP BY day, feature",
            (start_day, end_day),
        ):
            totals[name] = totals.get(name, 0) + users
        return totals

    def first_values(
        self, users: Collection[str], features: Collection[str], end_day: int
    ) -> dict[str, tuple[int, int | None]]:
        """First event from ``user_day`` (the user's first day), first uses from ``first_use``."""
        if not users:
            return {}
        conn = self.conn
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS newcomer (user TEXT PRIMARY KEY)")
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS core (feature TEXT PRIMARY KEY)")
        conn.execute("DELETE FROM temp.newcomer")
        conn.execute("DELETE FROM temp.core")
        conn.executemany("INSERT INTO temp.newcomer VALUES (?)", [(user,) for user in users])
        conn.executemany(
            "INSERT OR IGNORE INTO temp.core VALUES (?)", [(name,) for name in features]
        )
        # One pass over the newcomers in key order, two index seeks each (their first
        # ``user_day`` row, their first use of each core feature): no GROUP BY sort.
        rows = conn.execute(
            "SELECT n.user, (SELECT d.first_ts FROM user_day AS d INDEXED BY user_day_by_user"
            " WHERE d.user = n.user AND d.day < ? ORDER BY d.day LIMIT 1),"
            " (SELECT min(f.ts) FROM temp.core AS c CROSS JOIN first_use AS f"
            " ON f.user = n.user AND f.feature = c.feature WHERE f.ts < ?)"
            " FROM temp.newcomer AS n",
            (end_day, end_day * DAY_US),
        )
        return {user: (first, value) for user, first, value in rows if first is not None}

    def releases(self, window: Window) -> list[tuple[int, str]]:
        """From ``releases``."""
        return self.conn.execute(
            "SELECT ts, version FROM releases WHERE ts >= ? AND ts < ? ORDER BY ts, id",
            (window.start_us, window.end_us),
        ).fetchall()

    # -- retention ------------------------------------------------------------------------

    def cohort_active_weeks(
        self, cohorts: dict[int, list[str]], end_day: int
    ) -> dict[tuple[int, int], int]:
        """Cohort users in a temp table, joined with ``user_day`` in (user, day) order."""
        conn = self.conn
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS cohort (user TEXT PRIMARY KEY, monday INTEGER)"
        )
        conn.execute("DELETE FROM temp.cohort")
        conn.executemany(
            "INSERT INTO temp.cohort VALUES (?, ?)",
            [(user, monday) for monday, users in cohorts.items() for user in users],
        )
        if (end_day - 1 - min(cohorts)) // 7 < _MASK_WEEKS:
            return self._active_by_mask(end_day)
        return self._active_by_rows(end_day)

    def _active_by_mask(self, end: int) -> dict[tuple[int, int], int]:
        """Active users per (cohort Monday, week offset), one row per cohort user.

        Each user's active weeks come back as one integer (bit k set: active in week k),
        aggregated while the cohort's primary key and the (user, day) index are read in
        order; a GROUP BY per (user, week) and another per (cohort, week) measured about
        twice as slow, both sorting in temp b-trees.
        """
        active: dict[tuple[int, int], int] = {}
        for monday, weeks_mask in self.conn.execute(
            "SELECT c.monday, sum(DISTINCT 1 << ((d.day - c.monday) / 7))"
            " FROM temp.cohort c CROSS JOIN user_day d INDEXED BY user_day_by_user"
            " ON d.user = c.user AND d.day >= c.monday AND d.day < ? GROUP BY c.user",
            (end,),
        ):
            week, mask = 0, weeks_mask
            while mask:
                if mask & 1:
                    active[(monday, week)] = active.get((monday, week), 0) + 1
                mask >>= 1
                week += 1
        return active

    def _active_by_rows(self, end: int) -> dict[tuple[int, int], int]:
        """Active users per (cohort Monday, week offset) for windows too long for a mask."""
        # Inner query: one row per (user, week) in index order (user, day), no sort.
        return {
            (monday, week): users
            for monday, week, users in self.conn.execute(
                "SELECT monday, week, count(*) FROM ("
                " SELECT c.monday AS monday, (d.day - c.monday) / 7 AS week"
                " FROM temp.cohort c CROSS JOIN user_day d INDEXED BY user_day_by_user"
                " ON d.user = c.user AND d.day >= c.monday AND d.day < ?"
                " GROUP BY d.user, week"
                ") GROUP BY monday, week",
                (end,),
            )
        }

    # -- sessions (``sessions``) ----------------------------------------------------------

    def sessions(self, window: Window, known: Container[str]) -> tuple[SessionSpans, SessionSpans]:
        """From ``sessions``, ``activity_bucket`` and ``loose_events`` (``session_spans``)."""
        return session_spans(SessionScope(self.conn, window, self._pop, known))
