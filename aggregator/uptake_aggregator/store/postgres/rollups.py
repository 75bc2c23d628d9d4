"""The central rollups, folded from the stored events each host's chunks inserted.

A forwarded chunk's transaction stores its events (``central``) and moves the host's
cursor; ``fold`` brings the rollups up to date with them, exactly once each: per host,
``folds`` records how far that host's local sequences are in the rollups, and one
transaction reads the events of the next range of sequences (the ``events_by_host``
index), applies every rollup statement to them and moves the host's fold mark. A host's
chunk inserts only events the centre did not hold, all under the host's id and a
sequence at most its cursor, so the ranges up to the cursors hold every stored event
once. At every committed state the rollups plus the events between each host's fold
mark and its cursor account for every stored event once, and a reader that folds first
(``PostgresStore.report_source``) reads rollups exact for the events its snapshot
holds, but the ones stored after its fold, which ``events_stored`` leaves out too.

Why later, not in the chunk's transaction: the rollups write ~1.5 rows per event at
2-3 times the cost of an events row (an index probe and a speculative insertion each,
docs/benchmarks.md), three times the COPY of the events themselves; in the chunk's
transaction they held forwarding to ~12-20% of the raw COPY rate. Folded later, in
larger pieces, the rows of a (user, day), a session or a (user, feature) that several
chunks touch are upserted once per fold. And why from ``events``, not a queue of its
own: a queue wrote every event twice in the chunk (schema version 3, dropped in 4).

Every rollup statement is commutative (sums, least, greatest, the earliest or latest by
(ts, id)), so rows fold in any order and any grouping. Statements run in one order and
sort their rows by key, so two folds touching the same rollup rows lock them in the same
order (no deadlock). Forwarders take a host's range with ``FOR UPDATE SKIP LOCKED`` on
its ``folds`` row (two hosts fold different ranges at once, and a fold never waits for
a chunk, which locks ``hosts``); a reader's fold waits for folds in flight, so when it
commits every event stored before it is in the rollups.

Example::

    with connect(url) as conn:
        fold(conn)                 # everything stored; waits for folds in flight
        fold(conn, limit=200_000)  # a forwarder's bounded piece: (events, more may wait)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from uptake_aggregator.units import DAY_US

if TYPE_CHECKING:
    import psycopg

__all__ = ["FRESH_COLUMNS", "FRESH_TABLE", "ROLLUP_STATEMENTS", "behind", "fold"]

#: The columns of the fold's ``fresh`` temp table, in order: the events, normalised.
FRESH_COLUMNS: Final = 'id, ts, day, kind, name, "user", account, session, value, integration'

_FOLD_WORK_MEM: Final = "64MB"
FRESH_TABLE: Final = """CREATE TEMP TABLE IF NOT EXISTS fresh (
    id bytea, ts bigint, day integer, kind text, name text, "user" text, account text,
    session text, value bigint, integration text
) ON COMMIT DELETE ROWS"""
# Absent and empty names are the same "no one" (docs/metrics.md): NULL from here on.
# PostgreSQL's integer division truncates towards zero, as the SQLite rollups' day does.
_FRESH_FROM_EVENTS: Final = f"""INSERT INTO fresh
SELECT id, ts, (ts / {DAY_US})::integer, kind, name, nullif("user", ''), nullif(account, ''),
       nullif(session, ''), value, integration
FROM events WHERE host_id = %s AND seq > %s AND seq <= %s"""
# A host registered since the last fold gets its mark (hosts are few: a cheap check),
# in host order, so two folds registering the same hosts never wait for each other in turn.
_REGISTER: Final = """INSERT INTO folds (host_id)
SELECT host_id FROM hosts WHERE host_id NOT IN (SELECT host_id FROM folds) ORDER BY host_id
ON CONFLICT DO NOTHING"""
_BEHIND: Final = """SELECT f.host_id, f.folded, h.cursor
FROM folds AS f JOIN hosts AS h USING (host_id) WHERE f.folded < h.cursor"""

ROLLUP_STATEMENTS: Final = (
    """INSERT INTO user_day AS t
    SELECT coalesce(account, ''), day, "user", count(*), count(*) FILTER (WHERE kind = 'login'),
           min(ts), max(ts), (array_agg(id ORDER BY ts DESC, id DESC))[1]
    FROM fresh WHERE "user" IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (account, day, "user") DO UPDATE SET
        events = t.events + excluded.events,
        logins = t.logins + excluded.logins,
        first_ts = least(t.first_ts, excluded.first_ts),
        last_id = CASE WHEN (excluded.last_ts, excluded.last_id) > (t.last_ts, t.last_id)
                       THEN excluded.last_id ELSE t.last_id END,
        last_ts = greatest(t.last_ts, excluded.last_ts)""",
    """INSERT INTO account_day AS t
    SELECT account, day, count(*) FROM fresh WHERE account IS NOT NULL
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (account, day) DO UPDATE SET events = t.events + excluded.events""",
    """INSERT INTO feature_day AS t
    SELECT coalesce(account, ''), day, name, coalesce("user", ''), count(*)
    FROM fresh WHERE kind = 'feature' AND name IS NOT NULL
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (account, day, feature, "user") DO UPDATE SET
        events = t.events + excluded.events""",
    """INSERT INTO integration_day AS t
    SELECT coalesce(account, ''), day, coalesce("user", ''), integration, count(*)
    FROM fresh WHERE integration IS NOT NULL
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (account, day, "user", integration) DO UPDATE SET
        events = t.events + excluded.events""",
    """INSERT INTO seats SELECT account, ts, id, value FROM fresh
    WHERE kind = 'seats' AND account IS NOT NULL AND value IS NOT NULL ORDER BY 1, 2, 3
    ON CONFLICT DO NOTHING""",
    """INSERT INTO releases SELECT coalesce(account, ''), ts, id, name FROM fresh
    WHERE kind = 'release' AND name IS NOT NULL ORDER BY 1, 2, 3
    ON CONFLICT DO NOTHING""",
    # The user (account) of a session: that of its earliest event, by (ts, id), naming one.
    """INSERT INTO sessions AS t
    SELECT session,
           (array_agg(account ORDER BY ts, id) FILTER (WHERE account IS NOT NULL))[1],
           (array_agg(ts ORDER BY ts, id) FILTER (WHERE account IS NOT NULL))[1],
           (array_agg(id ORDER BY ts, id) FILTER (WHERE account IS NOT NULL))[1],
           (array_agg("user" ORDER BY ts, id) FILTER (WHERE "user" IS NOT NULL))[1],
           (array_agg(ts ORDER BY ts, id) FILTER (WHERE "user" IS NOT NULL))[1],
           (array_agg(id ORDER BY ts, id) FILTER (WHERE "user" IS NOT NULL))[1],
           min(ts) FILTER (WHERE kind = 'session_start'),
           max(ts) FILTER (WHERE kind = 'session_end'),
           min(ts), max(ts)
    FROM fresh WHERE session IS NOT NULL GROUP BY session ORDER BY session
    ON CONFLICT (session) DO UPDATE SET
        account = CASE WHEN excluded.account IS NOT NULL AND (t.account IS NULL
            OR (excluded.account_ts, excluded.account_id) < (t.account_ts, t.account_id))
            THEN excluded.account ELSE t.account END,
        account_ts = CASE WHEN excluded.account IS NOT NULL AND (t.account IS NULL
            OR (excluded.account_ts, excluded.account_id) < (t.account_ts, t.account_id))
            THEN excluded.account_ts ELSE t.account_ts END,
        account_id = CASE WHEN excluded.account IS NOT NULL AND (t.account IS NULL
            OR (excluded.account_ts, excluded.account_id) < (t.account_ts, t.account_id))
            THEN excluded.account_id ELSE t.account_id END,
        "user" = CASE WHEN excluded."user" IS NOT NULL AND (t."user" IS NULL
            OR (excluded.user_ts, excluded.user_id) < (t.user_ts, t.user_id))
            THEN excluded."user" ELSE t."user" END,
        user_ts = CASE WHEN excluded."user" IS NOT NULL AND (t."user" IS NULL
            OR (excluded.user_ts, excluded.user_id) < (t.user_ts, t.user_id))
            THEN excluded.user_ts ELSE t.user_ts END,
        user_id = CASE WHEN excluded."user" IS NOT NULL AND (t."user" IS NULL
            OR (excluded.user_ts, excluded.user_id) < (t.user_ts, t.user_id))
            THEN excluded.user_id ELSE t.user_id END,
        start_ts = least(t.start_ts, excluded.start_ts),
        end_ts = greatest(t.end_ts, excluded.end_ts),
        first_ts = least(t.first_ts, excluded.first_ts),
        last_ts = greatest(t.last_ts, excluded.last_ts)""",
    """INSERT INTO loose_events
    SELECT coalesce(account, ''), "user", ts FROM fresh
    WHERE session IS NULL AND "user" IS NOT NULL ORDER BY 1, 2, 3
    ON CONFLICT DO NOTHING""",
    """INSERT INTO user_feature AS t
    SELECT coalesce(account, ''), "user", name, min(ts), max(day) FROM fresh
    WHERE kind = 'feature' AND name IS NOT NULL AND "user" IS NOT NULL
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (account, "user", feature) DO UPDATE SET
        first_ts = least(t.first_ts, excluded.first_ts),
        last_day = greatest(t.last_day, excluded.last_day)
    WHERE excluded.first_ts < t.first_ts OR excluded.last_day > t.last_day""",
)

#: The rollups as one script: without parameters, psycopg sends it as one simple query,
#: one round trip for all of them instead of one each.
_ROLLUP_SCRIPT: Final = ";\n".join(ROLLUP_STATEMENTS)


def fold(
    conn: psycopg.Connection[tuple[Any, ...]], *, limit: int | None = None
) -> tuple[int, bool]:
    """Fold stored events into the rollups in one transaction; return how many, and
    whether more may wait.

    ``limit``: the next at most that many sequences of one host behind, skipping hosts
    another fold holds (a forwarder's piece; "more may wait" when it took one). Without
    it: every host's events up to its cursor, waiting for the folds in flight (a
    reader's fold: when it returns, everything stored before the call is in the
    rollups; nothing more waits). Raises ``psycopg.Error`` as the server does; nothing
    is folded then.
    """
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_REGISTER)
        if limit is None:
            cur.execute(f"{_BEHIND} ORDER BY f.host_id FOR UPDATE OF f")
            ranges = [(host, after, cursor) for host, after, cursor in cur.fetchall()]
        else:
            cur.execute(
                f"{_BEHIND} ORDER BY h.cursor - f.folded DESC LIMIT 1 FOR UPDATE OF f SKIP LOCKED"
            )
            ranges = [(host, after, min(cursor, after + limit)) for host, after, cursor in cur]
        if not ranges:
            return 0, False
        # A fold sorts its rows (GROUP BY, array_agg ORDER BY): at the default 4 MB those
        # sorts spill to temporary files. For this transaction only, never lowered.
        cur.execute(
            "SELECT set_config('work_mem', %s, true)"
            " WHERE pg_size_bytes(current_setting('work_mem')) < pg_size_bytes(%s)",
            (_FOLD_WORK_MEM, _FOLD_WORK_MEM),
        )
        cur.execute(FRESH_TABLE)
        moved = 0
        for host, after, upto in ranges:
            cur.execute(_FRESH_FROM_EVENTS, (host, after, upto))
            events = max(cur.rowcount, 0)
            cur.execute(
                "UPDATE folds SET folded = %s, events = events + %s WHERE host_id = %s",
                (upto, events, host),
            )
            moved += events
        if moved:
            cur.execute(_ROLLUP_SCRIPT)
    return moved, limit is not None


def behind(conn: psycopg.Connection[tuple[Any, ...]]) -> bool:
    """True when a host's stored events are not all in the rollups (as this connection
    sees the committed state)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM hosts AS h LEFT JOIN folds AS f USING (host_id)"
        " WHERE coalesce(f.folded, 0) < h.cursor)"
    ).fetchone()
    return bool(row is not None and row[0])
