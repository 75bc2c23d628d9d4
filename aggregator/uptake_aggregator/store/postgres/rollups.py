"""The central rollups, folded from the queue of the events inserted but not yet counted.

A forwarded chunk's transaction stores its events, queues the rows it actually inserted
in ``rollup_queue`` (normalised: the ``day``, '' as NULL) and moves the host's cursor
(``central``); ``fold`` moves queued rows into the rollups, exactly once each: in one
transaction it deletes them from the queue and applies every rollup statement to them.
So at every committed state the rollups plus the queue account for every stored event
once, and a reader that folds first (``PostgresStore.report_source``) reads rollups that
are exact for the events its snapshot holds but the ones queued after its fold, which
``events_stored`` leaves out too.

Why a queue: the rollups write ~1.5 rows per event at 2-3 times the cost of an events
row (an index probe and a speculative insertion each, docs/benchmarks.md), three times
the COPY of the events themselves; in the chunk's transaction they held forwarding to
~12-20% of the raw COPY rate. Folded later, in larger pieces, the rows of a (user, day),
a session or a (user, feature) that several chunks touch are upserted once per fold.

Every rollup statement is commutative (sums, least, greatest, the earliest or latest by
(ts, id)), so rows fold in any order and any grouping. Statements run in one order and
sort their rows by key, so two folds touching the same rollup rows lock them in the same
order (no deadlock). Forwarders fold with ``FOR UPDATE SKIP LOCKED`` (two hosts fold
different rows at once); a reader's fold waits for folds in flight, so when it commits
every row queued before it is in the rollups.

Example::

    with connect(url) as conn:
        fold(conn)                 # everything queued; waits for folds in flight
        fold(conn, limit=200_000)  # a forwarder's bounded piece
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import psycopg

__all__ = ["QUEUE_COLUMNS", "fold", "queued"]

#: The columns of ``rollup_queue`` (and of the fold's ``fresh`` temp table), in order.
QUEUE_COLUMNS: Final = 'id, ts, day, kind, name, "user", account, session, value, integration'

_FOLD_WORK_MEM: Final = "64MB"
_FRESH_TABLE: Final = """CREATE TEMP TABLE IF NOT EXISTS fresh (
    id bytea, ts bigint, day integer, kind text, name text, "user" text, account text,
    session text, value bigint, integration text
) ON COMMIT DELETE ROWS"""

_ROLLUPS: Final = (
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
_ROLLUP_SCRIPT: Final = ";\n".join(_ROLLUPS)


def fold(conn: psycopg.Connection[tuple[Any, ...]], *, limit: int | None = None) -> int:
    """Fold queued rows into the rollups in one transaction; return how many.

    ``limit``: at most that many rows, skipping rows another fold holds (a forwarder's
    piece). Without it: every queued row, waiting for the folds in flight (a reader's
    fold: when it returns, everything queued before the call is in the rollups).
    Raises ``psycopg.Error`` as the server does; nothing is folded then.
    """
    if limit is None:
        take = f"DELETE FROM rollup_queue RETURNING {QUEUE_COLUMNS}"
        params: tuple[Any, ...] = ()
    else:
        take = (
            "DELETE FROM rollup_queue WHERE ctid = ANY(ARRAY("
            "SELECT ctid FROM rollup_queue LIMIT %s FOR UPDATE SKIP LOCKED))"
            f" RETURNING {QUEUE_COLUMNS}"
        )
        params = (limit,)
    with conn.transaction(), conn.cursor() as cur:
        # A fold sorts its rows (GROUP BY, array_agg ORDER BY): at the default 4 MB those
        # sorts spill to temporary files. For this transaction only, never lowered.
        cur.execute(
            "SELECT set_config('work_mem', %s, true)"
            " WHERE pg_size_bytes(current_setting('work_mem')) < pg_size_bytes(%s)",
            (_FOLD_WORK_MEM, _FOLD_WORK_MEM),
        )
        cur.execute(_FRESH_TABLE)
        cur.execute(f"WITH taken AS ({take}) INSERT INTO fresh SELECT * FROM taken", params)
        moved = max(cur.rowcount, 0)
        if moved:
            cur.execute(_ROLLUP_SCRIPT)
    return moved


def queued(conn: psycopg.Connection[tuple[Any, ...]]) -> bool:
    """True when rows wait in the queue (committed ones, as this connection sees them)."""
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM rollup_queue)").fetchone()
    return bool(row is not None and row[0])
