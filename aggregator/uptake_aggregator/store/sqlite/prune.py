"""Pruning: delete the events before a UTC day and keep every rollup consistent.

After ``prune(db, cut_us)`` the database holds exactly the events it would hold had only
the kept events ever been imported into a fresh one: raw events, every rollup and the
events counter. So a report over any window equals the report of such a fresh database.

**What survives.** Every event at or after the cut, and a few older "anchor" events that
later reports read through an unbounded look-back ("the latest ... before", "seen
before"). Without them a report for a window wholly after the cut would change:

- per account, its latest ``seats`` event: seats as of any day after the cut;
- per account, its latest event of any kind: the account stays among the accounts seen;
- per user, their latest event: the user stays known (product usage rate), keeps their
  last-seen time, and does not look new after the cut (retention cohorts are reported
  for weeks starting in the window, so any older event keeps a user out of them);
- per user, their latest event naming an account: the user's account (docs/metrics.md);
- sessions that span the cut, whole: an explicit session id with events on both sides
  (it belongs to the day of its start), and each user's session-less events that form
  the implicit session running across the cut (no gap over 30 minutes). Otherwise the
  part after the cut would count as a new, shorter session after it.
- explicit sessions whose 30-minute margin reaches the last 30 minutes before the cut,
  whole: the session-less events of their margin (docs/metrics.md, *Sessions*) after the
  cut, or just before it where they could join an implicit session across it, stay theirs.
- once the database forwards to a central store (README, *Scale out*), every event not
  yet forwarded (local sequence above the forward cursor): it exists nowhere else yet.

With these, a report whose window -- and the look-backs of bounded length it makes: the
previous window of the same length (growth, churn, health) and the trailing 7 / 30 days of
WAU / MAU -- lies at or after the cut is unchanged by the prune. Reports over windows
before the cut see only the anchors there (a few events per user and account), as a fresh
import of the kept events would: a user's first-seen day (their retention cohort) moves
to their latest event before the cut, and activity, features and sessions before the cut
are mostly gone. Users' first events are not kept: no report after the cut needs them.

**How.** One ``BEGIN IMMEDIATE`` transaction: a crash or an error at any point leaves the
database as it was. The anchors come from the rollups (which name the latest seats and
account-naming events, and give the times, days and sessions that pick the others) and
one scan of the events before the cut in SQL; then the other events before the cut are
deleted. Rollup rows after the cut depend only on events
after it (every anchor is before the cut), so only the rollup rows before the cut are
deleted and rebuilt, by folding the kept older events through the ingest code
(``Rollups``). ``user_feature`` (first and last day of use per pair, keyed by neither day
nor time) is the one exception: the pairs first used before the cut get their span again
from ``feature_day``, which holds every day of use of every pair.

The caller must make sure no daemon writes to the database meanwhile (the daemon's
writer remembers which (user, feature) spans are stored, and a prune narrows them).

Example::

    result = prune(Path("uptake.db"), cut_us=schema.day_start_us(date(2026, 9, 1)))
    print(result.removed, result.kept)
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from uptake_aggregator.errors import StorageError
from uptake_aggregator.store.sqlite.margins import (
    EXPLICIT_STOP_SQL,
    Margins,
    in_margin,
    merge_margins,
)
from uptake_aggregator.store.sqlite.readonly import connect_readonly, db_bytes, events_stored
from uptake_aggregator.store.sqlite.schema import DAY_US, SESSION_GAP_US

if TYPE_CHECKING:
    from uptake.protocol import Event

__all__ = ["PruneResult", "plan_prune", "prune", "rollup_tables", "vacuum_db"]

#: Events folded into one ``Rollups`` at a time while rebuilding (bounds memory).
_REPLAY_CHUNK: Final = 50_000
#: A 64 MiB page cache for the rebuild: the deletes touch every rollup's old pages.
_CACHE_KIB: Final = 65_536

#: Rollup rows that depend only on events before the cut, as (table, condition on the
#: cut: ``:day``, ``:bucket`` or ``:ts``). Sessions that span the cut are kept whole, so
#: only the sessions that ended before it are rebuilt.
_BEFORE_CUT: Final = (
    ("user_day", "day < :day"),
    ("user_account", "day < :day"),
    ("account_day", "day < :day"),
    ("feature_day", "day < :day"),
    # Rebuilt by its trigger as the kept events' ``feature_day`` rows are inserted again.
    ("feature_day_users", "day < :day"),
    ("feature_totals", "day < :day"),
    ("integration_day", "day < :day"),
    ("seats", "ts < :ts"),
    ("releases", "ts < :ts"),
    ("sessions", "last_ts < :ts"),
    ("activity_bucket", "bucket < :bucket"),
    ("loose_events", "ts < :ts"),
)


def rollup_tables() -> frozenset[str]:
    """Every rollup table the prune rebuilds (with ``user_feature``, ``features``, ``first_use``,
    ``user_span``).

    A test checks this against the schema, so a new rollup cannot be forgotten here.
    """
    return frozenset(
        {table for table, _ in _BEFORE_CUT} | {"user_feature", "features", "first_use", "user_span"}
    )


@dataclass(frozen=True)
class PruneResult:
    """What a prune removed (or would remove): events before and after, anchors kept."""

    stored_before: int
    removed: int
    kept: int
    #: Events before the cut kept as anchors (included in ``kept``).
    anchors: int
    #: Events before the cut not yet forwarded to the central store (0 if never forwarded):
    #: anchors unless the prune was told to drop them.
    unforwarded: int


def plan_prune(db: Path, cut_us: int, *, keep_unforwarded: bool = True) -> PruneResult:
    """What ``prune(db, cut_us)`` would do, without changing anything (a dry run).

    Raises ``StorageError`` when there is no usable database at ``db``.
    """
    _check_cut(cut_us)
    conn = connect_readonly(db)
    try:
        conn.execute("BEGIN")  # one consistent snapshot while a daemon might write
        stored = events_stored(conn)
        keep, older, unforwarded = _anchors(conn, cut_us, keep_unforwarded)
        conn.execute("COMMIT")
    finally:
        conn.close()
    removed = older - len(keep)
    return PruneResult(stored, removed, stored - removed, len(keep), unforwarded)


def prune(db: Path, cut_us: int, *, keep_unforwarded: bool = True) -> PruneResult:
    """Delete the events before ``cut_us`` but the anchors; rebuild the rollups before it.

    The events a central store does not have yet are anchors too, unless
    ``keep_unforwarded`` is False (forwarding was given up for good: the centre will
    never get them). ``cut_us`` must be the start of a UTC day. One transaction: on any
    error (or a crash) the database is left as it was. Raises ``StorageError`` when
    there is no usable database at ``db``, or when it stays locked by another writer.
    """
    _check_cut(cut_us)
    connect_readonly(db).close()  # a missing database or an old schema: a clear error
    try:
        conn = sqlite3.connect(db, isolation_level=None)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open the database at {db}: {exc}") from None
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
        conn.execute("PRAGMA temp_store=MEMORY")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StorageError(
                f"the database {db} is busy ({exc}): is a daemon writing to it? "
                "Stop it with `usage daemon stop` first"
            ) from None
        try:
            result = _prune(conn, cut_us, keep_unforwarded)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:  # SQLite rolls back by itself after some errors
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):  # disk full, I/O error: the user's to fix
                raise StorageError(f"the prune of {db} failed, nothing changed: {exc}") from exc
            raise
        return result
    finally:
        conn.close()


def vacuum_db(db: Path) -> int:
    """Rewrite the database so the space of deleted rows is returned; return its bytes.

    Optional after a prune: SQLite reuses freed pages for later events anyway, and
    VACUUM rewrites the whole file (it needs as much free disk again, and time).
    """
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error as exc:
        raise StorageError(f"cannot vacuum the database at {db}: {exc}") from None
    finally:
        conn.close()
    return db_bytes(db)


def _check_cut(cut_us: int) -> None:
    if cut_us % DAY_US:
        raise ValueError(f"the cut must be the start of a UTC day, got {cut_us} us")


def _prune(conn: sqlite3.Connection, cut_us: int, keep_unforwarded: bool) -> PruneResult:
    """The prune inside the caller's write transaction."""
    stored = events_stored(conn)
    keep, _, unforwarded = _anchors(conn, cut_us, keep_unforwarded)
    conn.execute("CREATE TEMP TABLE keep (id BLOB PRIMARY KEY) WITHOUT ROWID")
    conn.executemany("INSERT INTO temp.keep VALUES (?)", ((event_id,) for event_id in keep))
    removed = conn.execute(
        "DELETE FROM events WHERE ts < ? AND id NOT IN (SELECT id FROM temp.keep)", (cut_us,)
    ).rowcount
    conn.execute("DROP TABLE temp.keep")
    if removed:
        _rebuild_before(conn, cut_us)
        conn.execute("UPDATE counters SET value = value - ? WHERE name = 'events'", (removed,))
    return PruneResult(stored, removed, stored - removed, len(keep), unforwarded)


#: Per-user, per-account and per-session facts that pick the anchors in one scan.
_ANCHOR_TABLES: Final = {
    "anchor_user": "(user TEXT PRIMARY KEY, last_ts INTEGER, chain_ts INTEGER)",
    "anchor_account": "(account TEXT PRIMARY KEY, since INTEGER NOT NULL)",
    "anchor_session": "(session TEXT PRIMARY KEY)",
}


def _anchors(
    conn: sqlite3.Connection, cut_us: int, keep_unforwarded: bool
) -> tuple[set[bytes], int, int]:
    """Ids of the events before the cut that survive, how many are before it, and how many
    of those the central store lacks (kept only with ``keep_unforwarded``).

    "Latest" is by (ts, id), the order the rollups use, so ties are decided as they are.
    The rollups name the latest seats and account-naming events outright; they give the
    time of each user's latest event, the last day of each account and the sessions
    spanning the cut, which pick the rest in one scan of the events in SQL (handing
    every older event to Python measured ~2 us an event).
    """
    cut = {"ts": cut_us, "day": cut_us // DAY_US}
    (older,) = conn.execute("SELECT count(*) FROM events WHERE ts < :ts", cut).fetchone()
    keep: set[bytes] = {
        event_id
        for (event_id,) in conn.execute(
            "SELECT (SELECT s.id FROM seats AS s WHERE s.account = a.account AND s.ts < :ts"
            " ORDER BY s.ts DESC, s.id DESC LIMIT 1)"
            " FROM (SELECT DISTINCT account FROM seats WHERE ts < :ts) AS a",
            cut,
        )
    }
    # SQLite takes a bare column from the row holding max(): the latest day's event.
    keep.update(
        event_id
        for _, event_id in conn.execute(
            "SELECT max(day), id FROM user_account WHERE day < :day GROUP BY user", cut
        )
    )
    for table, columns in _ANCHOR_TABLES.items():
        conn.execute(f"CREATE TEMP TABLE {table} {columns} WITHOUT ROWID")
    try:
        conn.execute(
            "INSERT INTO temp.anchor_user (user, last_ts) SELECT user, last_ts"
            " FROM (SELECT user, max(day), last_ts FROM user_day WHERE day < :day GROUP BY user)",
            cut,
        )
        conn.executemany(
            "UPDATE temp.anchor_user SET chain_ts = ? WHERE user = ?",
            [(start, user) for user, start in _implicit_chains(conn, cut_us).items()],
        )
        conn.execute(
            "INSERT INTO temp.anchor_account SELECT account, max(day) * ?"
            " FROM account_day WHERE day < ? GROUP BY account",
            (DAY_US, cut["day"]),
        )
        conn.execute(
            "INSERT INTO temp.anchor_session SELECT session FROM sessions"
            " WHERE first_ts < :ts AND (last_ts >= :ts OR (start_ts IS NOT NULL"
            f" AND user IS NOT NULL AND {EXPLICIT_STOP_SQL} >= :ts - 2 * :gap))",
            {**cut, "gap": SESSION_GAP_US},
        )
        rows = conn.execute(
            "SELECT e.id, e.ts, e.user, e.account, u.last_ts, a.since,"
            " (e.session IS NULL AND e.ts >= u.chain_ts) OR e.session IN temp.anchor_session"
            " FROM events AS e"
            " LEFT JOIN temp.anchor_user AS u ON u.user = e.user"
            " LEFT JOIN temp.anchor_account AS a ON a.account = e.account"
            " WHERE e.ts < :ts AND (e.ts = u.last_ts OR e.ts >= a.since"
            " OR (e.session IS NULL AND e.ts >= u.chain_ts) OR e.session IN temp.anchor_session)",
            cut,
        ).fetchall()
    finally:
        for table in _ANCHOR_TABLES:
            conn.execute(f"DROP TABLE temp.{table}")
    last: dict[str, tuple[int, bytes]] = {}
    account_last: dict[str, tuple[int, bytes]] = {}
    for event_id, ts, user, account, last_ts, since, spanning in rows:
        key = (ts, event_id)
        if ts == last_ts:
            _latest(last, user, key)
        if since is not None and ts >= since:
            _latest(account_last, account, key)
        if spanning:
            keep.add(event_id)
    for extremes in (last, account_last):
        keep.update(event_id for _, event_id in extremes.values())
    unforwarded = _unforwarded(conn, cut_us)
    if keep_unforwarded:
        keep.update(unforwarded)
    return keep, older, len(unforwarded)


def _unforwarded(conn: sqlite3.Connection, cut_us: int) -> list[bytes]:
    """Ids of the events before the cut not yet forwarded (none if never forwarded).

    The database is the outbox of a central store: an event above the forward cursor
    exists nowhere else yet. Kept like anchors (older events that change no report from
    the cut on: they are not any user's or account's latest, nor in a session across it).
    """
    (forwarded,) = conn.execute("SELECT value FROM counters WHERE name = 'forwarded'").fetchone()
    if forwarded < 0:
        return []
    return [
        event_id
        for (event_id,) in conn.execute(
            "SELECT id FROM events WHERE seq > ? AND ts < ?", (forwarded, cut_us)
        )
    ]


def _latest(latest: dict[str, tuple[int, bytes]], name: str, key: tuple[int, bytes]) -> None:
    """Record ``key`` as ``name``'s latest (ts, id) if it is later than the one known."""
    known = latest.get(name)
    if known is None or key > known:
        latest[name] = key


def _implicit_chains(conn: sqlite3.Connection, cut_us: int) -> dict[str, int]:
    """Per user whose implicit session runs across the cut, the ts that session starts.

    The rule of docs/metrics.md, as the sessions metric applies it: the user's session-less
    events outside every margin of their explicit sessions, split at gaps over 30 minutes.
    Only users with such an event in the 30 minutes before the cut can have one; their
    events are read from ``loose_events``, walking back while no gap exceeds 30 minutes.
    """
    gap = SESSION_GAP_US
    users = [
        user
        for (user,) in conn.execute(
            "SELECT DISTINCT user FROM loose_events WHERE ts >= ? AND ts < ?",
            (cut_us - gap, cut_us),
        )
    ]
    chains: dict[str, int] = {}
    for user in users:
        margins = _user_margins(conn, user)
        after = next(
            (
                ts
                for (ts,) in conn.execute(
                    "SELECT ts FROM loose_events WHERE user = ? AND ts >= ? AND ts <= ?"
                    " ORDER BY ts",
                    (user, cut_us, cut_us + gap),
                )
                if not in_margin(ts, margins)
            ),
            None,
        )
        if after is None:
            continue
        start = after
        earlier = conn.execute(
            "SELECT ts FROM loose_events WHERE user = ? AND ts < ? ORDER BY ts DESC",
            (user, cut_us),
        )
        for (ts,) in earlier:
            if start - ts > gap:
                break
            if not in_margin(ts, margins):
                start = ts
        if start < cut_us:
            chains[user] = start
    return chains


def _user_margins(conn: sqlite3.Connection, user: str) -> Margins:
    """The merged 30-minute margins of ``user``'s explicit sessions."""
    return merge_margins(
        conn.execute(
            f"SELECT start_ts, {EXPLICIT_STOP_SQL} FROM sessions WHERE user = ?"
            " AND start_ts IS NOT NULL",
            (user,),
        )
    )


def _rebuild_before(conn: sqlite3.Connection, cut_us: int) -> None:
    """Rebuild the rollup rows before the cut from the events still stored before it."""
    # Imported here: storage loads anyio, which a dry run does not need.
    from uptake_aggregator.store.sqlite.rollups import Covered, Rollups
    from uptake_aggregator.store.sqlite.storage import read_events

    cut = {"day": cut_us // DAY_US, "bucket": cut_us // SESSION_GAP_US, "ts": cut_us}
    for table, condition in _BEFORE_CUT:
        conn.execute(f"DELETE FROM {table} WHERE {condition}", cut)
    # user_feature: pairs first used before the cut lose those days. Forget them, fold
    # the kept events in, then give the pairs also used after the cut their span from
    # feature_day (complete again once the folding has rebuilt its days before the cut).
    conn.execute(
        "CREATE TEMP TABLE respan (user TEXT, feature TEXT, PRIMARY KEY (user, feature))"
        " WITHOUT ROWID"
    )
    conn.execute(
        "INSERT INTO temp.respan SELECT user, feature FROM user_feature_named"
        " WHERE first_day < :day AND last_day >= :day",
        cut,
    )
    conn.execute("DELETE FROM user_feature WHERE first_day < :day", cut)
    # first_use: a pair first used before the cut may have its first kept use after it.
    conn.execute(
        "CREATE TEMP TABLE refirst (user TEXT, feature TEXT, PRIMARY KEY (user, feature))"
        " WITHOUT ROWID"
    )
    conn.execute("INSERT INTO temp.refirst SELECT user, feature FROM first_use WHERE ts < :ts", cut)
    conn.execute("DELETE FROM first_use WHERE ts < :ts", cut)
    for chunk in _chunks(read_events(conn, None, cut_us)):
        rollups = Rollups()
        rollups.add(chunk)
        # A fresh Covered: it must not skip pairs as "already stored" (spans were cut).
        for sql, rows in rollups.statements(Covered()):
            conn.executemany(sql, rows)
    conn.execute(
        "INSERT OR REPLACE INTO user_feature"
        " SELECT d.user, f.id >> 6, f.id & 63, min(d.day), max(d.day)"
        " FROM feature_day AS d JOIN temp.respan AS r ON r.user = d.user AND r.feature = d.feature"
        " JOIN features AS f ON f.name = d.feature GROUP BY d.user, d.feature"
    )
    conn.execute("DROP TABLE temp.respan")
    conn.execute(
        "INSERT INTO first_use SELECT e.user, e.name, min(e.ts) FROM events AS e"
        " JOIN temp.refirst AS r ON r.user = e.user AND r.feature = e.name"
        " WHERE e.kind = 'feature' AND e.ts >= :ts GROUP BY e.user, e.name"
        " ON CONFLICT (user, feature) DO UPDATE SET ts = excluded.ts"
        " WHERE excluded.ts < first_use.ts",
        cut,
    )
    conn.execute("DROP TABLE temp.refirst")
    # user_span: the spans of users with events before the cut shrink; all of them again
    # from user_day (complete again now).
    conn.execute("DELETE FROM user_span")
    conn.execute(
        "INSERT INTO user_span SELECT user, min(day), max(day), max(last_ts) FROM user_day"
        " GROUP BY user"
    )
    # Names no pair uses any more go too, as a fresh import would not have them.
    conn.execute(
        "DELETE FROM features WHERE id NOT IN (SELECT (word << 6) | bit FROM user_feature)"
    )


def _chunks(events: Iterator[Event]) -> Iterator[list[Event]]:
    while chunk := list(itertools.islice(events, _REPLAY_CHUNK)):
        yield chunk
