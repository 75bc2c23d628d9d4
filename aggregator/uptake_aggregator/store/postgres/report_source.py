"""``PostgresReportSource``: the report's reads (``store.reports.ReportSource``) in SQL.

One connection, one ``REPEATABLE READ READ ONLY`` transaction: every query sees the same
committed state of the centre, whatever the forwarders commit meanwhile. The figures are
computed on the server from the rollups (``schema``): distinct counts, DAU, retention
cohorts, the implicit sessions (30-minute gaps over the session-less events, outside the
explicit sessions' margins, with window functions). Python only reshapes the rows.

The population (a user or account filter) and other user lists are passed as arrays
(``= ANY(%s)``, ``unnest``): no temp tables, so the read transaction stays read-only.
Text ordering that reaches the report uses ``COLLATE "C"`` (byte order, as SQLite's).

Each method is one small query: a new ``ReportSource`` method is one more method here.
"""

from __future__ import annotations

from collections.abc import Collection, Container, Iterable
from typing import TYPE_CHECKING, Any, Final

from uptake_aggregator.store.masks import BitMasks, IdSets, SetAlgebra
from uptake_aggregator.store.reports import (
    FeatureIds,
    FeatureSets,
    KnownUser,
    SessionSpans,
    UserActivity,
)
from uptake_aggregator.units import DAY_US, SESSION_GAP_US
from uptake_aggregator.window import WEEK_BITS, Window

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresReportSource"]

#: Masks (one per user) while users x (features + 1) stays under this many bits (as SQLite).
_MAX_MASK_BITS: Final = 1 << 29
#: The end of an explicit session: its latest ``session_end`` (never before the start),
#: else its latest event carrying the id (as ``store.sqlite.margins.EXPLICIT_STOP_SQL``).
_STOP: Final = "greatest(coalesce(s.end_ts, s.last_ts), s.start_ts)"

# Implicit sessions: a user's session-less events from ``low`` on, outside every explicit
# session's margin [start - 30 min, stop + 30 min]; a new session starts where the gap to
# the previous event exceeds 30 minutes. Sessions starting in the window, with their whole
# duration (even past ``until``). An event is inside a margin exactly when the highest
# end of the margins starting at or before it reaches it: one running max over the
# user's margins and events in time order (margins first at equal times, both ends
# inclusive), instead of a lookup per event. Then only the events that start or end a
# session (a gap over 30 minutes before or after) are kept: a start's session ends at
# itself or at the next such event. Rows of one (user, ts) under two accounts change
# neither a gap nor a span: no DISTINCT.
_IMPLICIT: Final = f"""
WITH stream AS (
    SELECT l."user", l.ts, 1 AS is_event, NULL::bigint AS high FROM loose_events AS l
    WHERE l.ts >= %(low)s {{pop_loose}}
    UNION ALL
    SELECT s."user", s.start_ts - {SESSION_GAP_US}, 0, {_STOP} + {SESSION_GAP_US}
    FROM sessions AS s
    WHERE s."user" IS NOT NULL AND s.start_ts IS NOT NULL
      AND {_STOP} + {SESSION_GAP_US} >= %(low)s {{pop_sessions}}
), reached AS (
    SELECT "user", ts, is_event,
           max(high) OVER (PARTITION BY "user" ORDER BY ts, is_event ROWS UNBOUNDED PRECEDING)
               AS reach
    FROM stream
), kept AS (
    SELECT "user", ts FROM reached WHERE is_event = 1 AND (reach IS NULL OR reach < ts)
), edges AS (
    SELECT "user", ts,
           coalesce(ts - lag(ts) OVER w > {SESSION_GAP_US}, true) AS starts,
           coalesce(lead(ts) OVER w - ts > {SESSION_GAP_US}, true) AS ends
    FROM kept WINDOW w AS (PARTITION BY "user" ORDER BY ts)
), spans AS (
    SELECT "user", ts, starts,
           CASE WHEN ends THEN ts ELSE lead(ts) OVER (PARTITION BY "user" ORDER BY ts) END
               AS stop
    FROM edges WHERE starts OR ends
)
SELECT "user", stop - ts FROM spans
WHERE starts AND ts >= %(since)s AND ts < %(until)s
"""


class _EveryUser:
    """Contains every user id: all stored activity lies before ``until``."""

    def __contains__(self, user: object) -> bool:
        return True


class PostgresReportSource:
    """One read-only repeatable-read transaction (see ``ReportSource``)."""

    def __init__(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        self.conn = conn
        self._population: list[str] | None = None
        self._one_account_a_day: bool | None = None

    def close(self) -> None:
        """End the transaction and close the connection."""
        self.conn.close()

    def _rows(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        # Binary results: numbers arrive as machine integers, not digits to parse.
        with self.conn.cursor(binary=True) as cur:
            return cur.execute(sql, params).fetchall()

    def _pop(self, column: str = '"user"') -> tuple[str, dict[str, Any]]:
        """The SQL restricting ``column`` to the population, and its parameter."""
        if self._population is None:
            return "", {}
        return f" AND {column} = ANY(%(pop)s)", {"pop": self._population}

    def _single_accounts(self) -> bool:
        """True when no user has events under two accounts on one day (read once).

        The rollups are per account, so such a (user, day) has two ``user_day`` rows, and
        distinct (user, day) or (user, day, feature) counts must be made distinct. They
        are rare (a user moving between accounts mid-day): without any, plain row counts
        are those distinct counts, which spares a hash or a sort of every row in each of
        the queries below that ask.
        """
        if self._one_account_a_day is None:
            [(shared,)] = self._rows(
                'SELECT EXISTS (SELECT 1 FROM user_day GROUP BY "user", day HAVING count(*) > 1)'
            )
            self._one_account_a_day = not shared
        return self._one_account_a_day

    def events_stored(self) -> int:
        """Events inserted by every host and folded into the rollups, in this transaction.

        The events stored after the report's fold (``rollups``) are left out, as the
        rollups leave them out: the mark of a snapshot changes exactly when what the
        report reads does.
        """
        [(stored,)] = self._rows("SELECT coalesce(sum(events), 0)::bigint FROM folds")
        return int(stored)

    def restrict_to(self, population: frozenset[str] | None) -> None:
        """Keep the population for the queries that answer over it."""
        self._population = None if population is None else sorted(population)

    # -- users and accounts ---------------------------------------------------------------

    def known_users(self, end_day: int) -> dict[str, KnownUser]:
        """First day and last event from ``user_day``; the account of the latest naming one."""
        spans = self._rows(
            'SELECT "user", min(day), max(last_ts) FROM user_day WHERE day < %s GROUP BY "user"',
            (end_day,),
        )
        accounts = dict(
            self._rows(
                'SELECT DISTINCT ON ("user") "user", account FROM user_day'
                " WHERE day < %s AND account <> ''"
                ' ORDER BY "user", last_ts DESC, last_id DESC',
                (end_day,),
            )
        )
        return {
            user: KnownUser(first_day, last_ts, accounts.get(user))
            for user, first_day, last_ts in spans
        }

    def known_user_ids(self, end_day: int) -> Container[str]:
        """Every user when no activity lies on or after ``end_day``, else those before it."""
        [(latest,)] = self._rows("SELECT max(day) FROM user_day")
        if latest is None or latest < end_day:
            return _EveryUser()
        return {
            user
            for (user,) in self._rows(
                'SELECT DISTINCT "user" FROM user_day WHERE day < %s', (end_day,)
            )
        }

    def accounts_seen(self, end_day: int) -> list[str]:
        """From ``account_day``, in byte order."""
        return [
            account
            for (account,) in self._rows(
                'SELECT DISTINCT account COLLATE "C" FROM account_day WHERE day < %s ORDER BY 1',
                (end_day,),
            )
        ]

    # -- activity -------------------------------------------------------------------------

    def daily_active_users(self, start_day: int, end_day: int) -> dict[int, int]:
        """Distinct users of ``user_day`` per day."""
        pop, params = self._pop()
        users = "count(*)" if self._single_accounts() else 'count(DISTINCT "user")'
        return dict(
            self._rows(
                f"SELECT day, {users}::integer FROM user_day"
                f" WHERE day >= %(start)s AND day < %(end)s{pop} GROUP BY day",
                {"start": start_day, "end": end_day, **params},
            )
        )

    def active_user_count(self, start_day: int, end_day: int) -> int:
        """Distinct users of ``user_day`` in the range."""
        pop, params = self._pop()
        [(count,)] = self._rows(
            'SELECT count(DISTINCT "user") FROM user_day'
            f" WHERE day >= %(start)s AND day < %(end)s{pop}",
            {"start": start_day, "end": end_day, **params},
        )
        return int(count)

    def active_day_counts(self, start_day: int, end_day: int) -> dict[int, int]:
        """Users of the population per number of distinct active days, as a histogram.

        Only the histogram leaves the server (at most one row per day of the range).
        """
        pop, params = self._pop()
        days = "count(*)" if self._single_accounts() else "count(DISTINCT day)"
        return dict(
            self._rows(
                f"SELECT days, count(*)::integer FROM (SELECT {days}::integer AS days"
                " FROM user_day WHERE day >= %(start)s AND day < %(end)s"
                f'{pop} GROUP BY "user") AS per_user GROUP BY days',
                {"start": start_day, "end": end_day, **params},
            )
        )

    def users_active_between(self, start_day: int, end_day: int) -> set[str]:
        """Distinct users of ``user_day`` in the range (every user)."""
        return {
            user
            for (user,) in self._rows(
                'SELECT DISTINCT "user" FROM user_day WHERE day >= %s AND day < %s',
                (start_day, end_day),
            )
        }

    def user_activity(self, window: Window, *, most_history: bool) -> dict[str, UserActivity]:
        """Per user over the window's (user, day)s: days, logins, login days, last day, weeks."""
        weeks = (
            f"sum(1::bigint << ((day - %(monday)s) / 7 * {WEEK_BITS}))::bigint"
            if window.weeks_packable
            else "0::bigint"
        )
        # One row per (user, day) already, unless a user had two accounts on a day.
        days = (
            "user_day"
            if self._single_accounts()
            else '(SELECT "user", day, sum(logins) AS logins FROM user_day'
            ' WHERE day >= %(start)s AND day < %(end)s GROUP BY "user", day)'
        )
        rows = self._rows(
            f'SELECT "user", count(*)::integer, sum(logins)::bigint,'
            f" (count(*) FILTER (WHERE logins > 0))::integer, max(day), {weeks}"
            f" FROM {days} AS d WHERE day >= %(start)s AND day < %(end)s"
            ' GROUP BY "user"',
            {"start": window.start, "end": window.end, "monday": window.first_monday},
        )
        return {
            user: UserActivity(days, int(logins), login_days, last_day, int(packed))
            for user, days, logins, login_days, last_day, packed in rows
        }

    # -- features -------------------------------------------------------------------------

    def feature_totals(self, window: Window) -> list[tuple[str, str, int]]:
        """Per (feature, account of user-less events or ''), from ``feature_day``."""
        return [
            (feature, account, int(events))
            for feature, account, events in self._rows(
                "SELECT feature, CASE WHEN \"user\" = '' THEN account ELSE '' END,"
                " sum(events)::bigint FROM feature_day WHERE day >= %s AND day < %s"
                " GROUP BY 1, 2",
                (window.start, window.end),
            )
        ]

    def population_feature_events(self, window: Window) -> dict[str, int]:
        """Per feature, events by users of the population (none without a population)."""
        if self._population is None:
            return {}
        return {
            feature: int(events)
            for feature, events in self._rows(
                "SELECT feature, sum(events)::bigint FROM feature_day"
                ' WHERE day >= %s AND day < %s AND "user" = ANY(%s) GROUP BY feature',
                (window.start, window.end, self._population),
            )
        }

    def feature_sets(
        self, window: Window, known: Collection[str], users: set[str] | None
    ) -> FeatureSets:
        """Each user's features used in the window, as id sets.

        From ``user_feature`` (one row per (account, user, feature): first use, last day
        of use) when no row straddles the window (first use before ``since``, last use
        on or after ``until``): a pair was then used in the window exactly when its span
        meets it (the default window, ending tomorrow, has no straddler, nor has one
        reaching the start of the data). Otherwise from the window's ``feature_day``
        rows, which answer any window.
        """
        only = ""
        params: dict[str, Any] = {
            "start": window.start,
            "end": window.end,
            "start_us": window.start_us,
            "end_us": window.end_us,
        }
        if users is not None:
            only = ' AND "user" = ANY(%(users)s)'
            params["users"] = sorted(users)
        [(straddling,)] = self._rows(
            "SELECT EXISTS (SELECT 1 FROM user_feature"
            f" WHERE first_ts < %(start_us)s AND last_day >= %(end)s{only})",
            params,
        )
        if straddling:
            pairs = self._rows(
                'SELECT DISTINCT "user", feature FROM feature_day'
                f" WHERE day >= %(start)s AND day < %(end)s AND \"user\" <> ''{only}",
                params,
            )
        else:
            # A pair under two accounts comes twice: harmless in a set, cheaper than DISTINCT.
            pairs = self._rows(
                'SELECT "user", feature FROM user_feature'
                f" WHERE first_ts < %(end_us)s AND last_day >= %(start)s{only}",
                params,
            )
        names = sorted({feature for _, feature in pairs})
        ids = FeatureIds(dict(enumerate(names, start=1)))
        algebra: SetAlgebra[Any]
        if (ids.highest + 1) * max(len(known), 1) <= _MAX_MASK_BITS:
            algebra = BitMasks()
        else:
            algebra = IdSets()
        sets: dict[str, Any] = {}
        empty = algebra.empty
        members = {name: algebra.of(ids.of(name)) for name in names}
        for user, feature in pairs:
            sets[user] = sets.get(user, empty) | members[feature]
        return FeatureSets(sets, ids, algebra)

    def feature_user_days(self, start_day: int, end_day: int) -> dict[str, int]:
        """Distinct (user, day) pairs per feature of ``feature_day``, counted on the server.

        A user under two accounts on one day counts once (the rows are per account): a
        hashed DISTINCT then, ~2.5x faster than ``count(DISTINCT ("user", day))``, which
        sorts row values; without such users, a count of rows (``_single_accounts``).
        """
        pop, params = self._pop()
        # Each row is one (feature, day, user) already, unless a user had two accounts
        # on a day.
        used = (
            "feature_day"
            if self._single_accounts()
            else '(SELECT DISTINCT feature, day, "user" FROM feature_day)'
        )
        return {
            feature: int(pairs)
            for feature, pairs in self._rows(
                f"SELECT feature, count(*) FROM {used} AS used"
                " WHERE day >= %(start)s AND day < %(end)s"
                f" AND \"user\" <> ''{pop} GROUP BY feature",
                {"start": start_day, "end": end_day, **params},
            )
        }

    def first_values(
        self, users: Collection[str], features: Collection[str], end_day: int
    ) -> dict[str, tuple[int, int | None]]:
        """First event from ``user_day``, first core use from ``user_feature``, per user.

        Both are least values over the user's accounts (the rollups are per account).
        """
        if not users:
            return {}
        rows = self._rows(
            'SELECT d."user", d.first, c.first FROM ('
            '  SELECT "user", min(first_ts) AS first FROM user_day'
            '  WHERE day < %(end)s AND "user" = ANY(%(users)s) GROUP BY "user") AS d'
            " LEFT JOIN ("
            '  SELECT "user", min(first_ts) AS first FROM user_feature'
            "  WHERE feature = ANY(%(core)s) AND first_ts < %(end_us)s"
            '  AND "user" = ANY(%(users)s)'
            '  GROUP BY "user") AS c USING ("user")',
            {
                "users": list(users),
                "core": list(features),
                "end": end_day,
                "end_us": end_day * DAY_US,
            },
        )
        return {user: (first, value) for user, first, value in rows if first is not None}

    # -- accounts -------------------------------------------------------------------------

    def seat_events(self, end_us: int) -> Iterable[tuple[str, int, int]]:
        """From ``seats``, in (account, ts, id) order."""
        return [
            (account, ts, int(seats))
            for account, ts, seats in self._rows(
                'SELECT account COLLATE "C", ts, seats FROM seats WHERE ts < %s ORDER BY 1, ts, id',
                (end_us,),
            )
        ]

    def daily_logins(
        self, window: Window, members: list[tuple[str, str]]
    ) -> dict[str, dict[int, int]]:
        """Per account and day, its ``members`` with a login (users joined as arrays)."""
        if not members:
            return {}
        daily: dict[str, dict[int, int]] = {}
        rows = self._rows(
            "SELECT m.account, d.day, count(*)::integer FROM unnest(%s::text[], %s::text[])"
            ' AS m("user", account) JOIN ('
            f'  SELECT {"" if self._single_accounts() else "DISTINCT "}"user", day FROM user_day'
            "  WHERE day >= %s AND day < %s AND logins > 0"
            ') AS d USING ("user") GROUP BY m.account, d.day',
            (
                [user for user, _ in members],
                [account for _, account in members],
                window.start,
                window.end,
            ),
        )
        for account, day, logged_in in rows:
            daily.setdefault(account, {})[day] = logged_in
        return daily

    def integration_uses(self, window: Window, *, most_history: bool) -> set[tuple[str, str, str]]:
        """Distinct (user, account, integration) of the window's ``integration_day`` rows."""
        return {
            (user, account, integration)
            for user, account, integration in self._rows(
                'SELECT DISTINCT "user", account, integration FROM integration_day'
                " WHERE day >= %s AND day < %s",
                (window.start, window.end),
            )
        }

    def releases(self, window: Window) -> list[tuple[int, str]]:
        """From ``releases``, in (ts, id) order."""
        return [
            (ts, version)
            for ts, version in self._rows(
                "SELECT ts, version FROM releases WHERE ts >= %s AND ts < %s ORDER BY ts, id",
                (window.start_us, window.end_us),
            )
        ]

    # -- retention ------------------------------------------------------------------------

    def cohort_active_weeks(
        self, cohorts: dict[int, list[str]], end_day: int
    ) -> dict[tuple[int, int], int]:
        """Distinct active cohort users per (cohort Monday, week offset), on the server."""
        users = [user for users in cohorts.values() for user in users]
        if not users:
            return {}
        mondays = [monday for monday, members in cohorts.items() for _ in members]
        return {
            (monday, week): count
            for monday, week, count in self._rows(
                'SELECT c.monday, (d.day - c.monday) / 7, count(DISTINCT c."user")::integer'
                ' FROM unnest(%s::text[], %s::integer[]) AS c("user", monday)'
                ' JOIN user_day AS d ON d."user" = c."user"'
                " AND d.day >= c.monday AND d.day < %s GROUP BY 1, 2",
                (users, mondays, end_day),
            )
        }

    # -- sessions -------------------------------------------------------------------------

    def sessions(self, window: Window, known: Container[str]) -> tuple[SessionSpans, SessionSpans]:
        """Explicit sessions from ``sessions``; implicit ones computed in SQL (``_IMPLICIT``)."""
        since, until = window.start_us, window.end_us
        pop, params = self._pop('s."user"')
        explicit: dict[str, tuple[int, int]] = {}
        explicit_durations: list[float] = []
        for user, duration in self._rows(
            f'SELECT s."user", {_STOP} - s.start_ts FROM sessions AS s'
            ' WHERE s."user" IS NOT NULL AND s.start_ts >= %(since)s'
            f" AND s.start_ts < %(until)s{pop}",
            {"since": since, "until": until, **params},
        ):
            if user not in known:  # its sessions take their user from an event after until
                continue
            count, total = explicit.get(user, (0, 0))
            explicit[user] = (count + 1, total + duration)
            explicit_durations.append(float(duration))
        # Buckets of 30 minutes as in SQLite: from one before ``since`` on, any earlier
        # event is more than 30 minutes before an event at or after ``since``.
        low = (since // SESSION_GAP_US - 1) * SESSION_GAP_US
        pop_loose, params = self._pop('l."user"')
        pop_sessions, _ = self._pop('s."user"')
        implicit: dict[str, tuple[int, int]] = {}
        implicit_durations: list[float] = []
        for user, duration in self._rows(
            _IMPLICIT.format(pop_loose=pop_loose, pop_sessions=pop_sessions),
            {"low": low, "since": since, "until": until, **params},
        ):
            count, total = implicit.get(user, (0, 0))
            implicit[user] = (count + 1, total + int(duration))
            implicit_durations.append(float(duration))
        return (explicit, explicit_durations), (implicit, implicit_durations)
