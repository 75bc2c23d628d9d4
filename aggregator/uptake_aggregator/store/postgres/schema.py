"""The central PostgreSQL schema: raw events, rollups, host cursors, dead letters.

Versioned like the SQLite one: ``MIGRATIONS[n]`` takes a database from version n to
n + 1, recorded in ``uptake_schema``; ``connection.migrate`` applies what is missing in
one transaction (``usage store init URL``). All tables live in the connection's
``search_path`` schema (``public`` by default; ``?options=-csearch_path%3Dusage`` in the
URL picks another).

- ``events``: every event forwarded by any host, keyed by its 16-byte id (the dedup
  check), with the ``host_id`` and local ``seq`` it came with (indexed together: the
  folds read a host's events by sequence) and, from version 4, its ``integration``
  prop as text, as the SQLite rollups render it.
- ``hosts``: per forwarding host, its cursor (the highest local sequence applied), events
  inserted and when it last forwarded. A host's chunk moves its cursor in the same
  transaction as its events, so the cursor is exactly "what the centre has".
- ``dead_letters``: events the centre refused as data (say a NUL character in a text),
  isolated from their chunk, with the server's error; they never block the rest.
- ``folds`` (version 4): per host, how far its sequences are folded into the rollups
  (``rollups.fold``) and the events that took. Version 3's ``rollup_queue`` (the rows a
  chunk inserted, queued for the rollups) is folded and dropped by version 4.
- Rollups, folded from the events (the same definitions as the SQLite rollups,
  docs/metrics.md). Every rollup row has an
  ``account`` column ('' when the events name none), first in its key where the key is
  per account, so the tables can later be distributed by account (Citus) without
  changing the metric SQL, which always aggregates across accounts:

  - ``user_day``: per (account, day, user): events, logins, first/last ts and the id of
    the latest event (by ts, id): DAU/WAU/MAU, logins, segments, retention, last_seen,
    and a user's account (their latest event naming one).
  - ``account_day``: per (account, day) the events naming the account (accounts seen).
  - ``feature_day``: per (account, day, feature, user) feature events ('' user: events
    without one).
  - ``integration_day``: per (account, day, user, integration prop).
  - ``seats``, ``releases``: the seat history and the release markers.
  - ``sessions``: per explicit session id: its first ``session_start``, last
    ``session_end``, first/last event carrying the id, and the user and account of its
    earliest event (by ts, id) naming one.
  - ``loose_events``: per (account, user, ts) the events without a session id: the
    implicit sessions (30-minute gaps, outside explicit sessions' margins) are computed
    from them in SQL.
  - ``user_feature`` (version 2): per (account, user, feature) the ts of the user's
    first ``feature`` event naming it under that account and the day of the last: a
    user's first use of a feature is the least over their accounts (time to first
    value, docs/metrics.md *Activation*), and a pair whose span does not straddle a
    window was used in it exactly when the span meets it (each user's features).
- ``goal_changes`` (version 2): the alert log (``alerts``), as in SQLite.
"""

from __future__ import annotations

from typing import Final

from uptake_aggregator.store.postgres.rollups import FRESH_COLUMNS, FRESH_TABLE, ROLLUP_STATEMENTS
from uptake_aggregator.units import DAY_US

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

_V1: Final = (
    """CREATE TABLE events (
        id bytea PRIMARY KEY,
        ts bigint NOT NULL,
        kind text NOT NULL,
        name text,
        "user" text,
        account text,
        session text,
        value bigint,
        props jsonb,
        source text,
        host_id text NOT NULL,
        seq bigint NOT NULL
    )""",
    """CREATE TABLE hosts (
        host_id text PRIMARY KEY,
        cursor bigint NOT NULL DEFAULT 0,
        events bigint NOT NULL DEFAULT 0,
        dead_letters bigint NOT NULL DEFAULT 0,
        first_seen timestamptz NOT NULL DEFAULT now(),
        last_forward timestamptz
    )""",
    """CREATE TABLE dead_letters (
        host_id text NOT NULL,
        seq bigint NOT NULL,
        id bytea NOT NULL,
        error text NOT NULL,
        event text NOT NULL,
        received timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (host_id, seq)
    )""",
    """CREATE TABLE user_day (
        account text NOT NULL,
        day integer NOT NULL,
        "user" text NOT NULL,
        events bigint NOT NULL,
        logins bigint NOT NULL,
        first_ts bigint NOT NULL,
        last_ts bigint NOT NULL,
        last_id bytea NOT NULL,
        PRIMARY KEY (account, day, "user")
    )""",
    'CREATE INDEX user_day_by_user ON user_day ("user", day) INCLUDE (logins, last_ts)',
    "CREATE INDEX user_day_by_day ON user_day (day)",
    """CREATE TABLE account_day (
        account text NOT NULL,
        day integer NOT NULL,
        events bigint NOT NULL,
        PRIMARY KEY (account, day)
    )""",
    """CREATE TABLE feature_day (
        account text NOT NULL,
        day integer NOT NULL,
        feature text NOT NULL,
        "user" text NOT NULL,
        events bigint NOT NULL,
        PRIMARY KEY (account, day, feature, "user")
    )""",
    "CREATE INDEX feature_day_by_day ON feature_day (day)",
    """CREATE TABLE integration_day (
        account text NOT NULL,
        day integer NOT NULL,
        "user" text NOT NULL,
        integration text NOT NULL,
        events bigint NOT NULL,
        PRIMARY KEY (account, day, "user", integration)
    )""",
    "CREATE INDEX integration_day_by_day ON integration_day (day)",
    """CREATE TABLE seats (
        account text NOT NULL,
        ts bigint NOT NULL,
        id bytea NOT NULL,
        seats bigint NOT NULL,
        PRIMARY KEY (account, ts, id)
    )""",
    """CREATE TABLE releases (
        account text NOT NULL,
        ts bigint NOT NULL,
        id bytea NOT NULL,
        version text NOT NULL,
        PRIMARY KEY (account, ts, id)
    )""",
    "CREATE INDEX releases_by_ts ON releases (ts, id)",
    """CREATE TABLE sessions (
        session text PRIMARY KEY,
        account text,
        account_ts bigint,
        account_id bytea,
        "user" text,
        user_ts bigint,
        user_id bytea,
        start_ts bigint,
        end_ts bigint,
        first_ts bigint NOT NULL,
        last_ts bigint NOT NULL
    )""",
    'CREATE INDEX sessions_by_user ON sessions ("user", start_ts)',
    """CREATE TABLE loose_events (
        account text NOT NULL,
        "user" text NOT NULL,
        ts bigint NOT NULL,
        PRIMARY KEY (account, "user", ts)
    )""",
    'CREATE INDEX loose_events_by_user ON loose_events ("user", ts)',
)

#: Version 2: the first use (to the microsecond) and the last day of use of each
#: (account, user, feature), built here from the stored events and kept by the
#: folds from then on; the alert log.
_V2: Final = (
    """CREATE TABLE user_feature (
        account text NOT NULL,
        "user" text NOT NULL,
        feature text NOT NULL,
        first_ts bigint NOT NULL,
        last_day integer NOT NULL,
        PRIMARY KEY (account, "user", feature)
    )""",
    'CREATE INDEX user_feature_by_user ON user_feature ("user", feature) INCLUDE (first_ts)',
    f"""INSERT INTO user_feature
    SELECT coalesce(nullif(account, ''), ''), "user", name, min(ts), max(ts) / {DAY_US}
    FROM events
    WHERE kind = 'feature' AND name IS NOT NULL AND coalesce("user", '') <> ''
    GROUP BY 1, 2, 3""",
    # Goal status changes (``alerts``): no event data, no report reads them.
    """CREATE TABLE goal_changes (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        ts bigint NOT NULL,
        goal text NOT NULL,
        subject text NOT NULL,
        from_status text,
        to_status text NOT NULL,
        value double precision
    )""",
    "CREATE INDEX goal_changes_by_subject ON goal_changes (goal, subject, id)",
    "CREATE INDEX goal_changes_by_ts ON goal_changes (ts)",
)

#: Version 3: the rollup queue. A chunk's transaction queues the rows it inserted instead
#: of updating the rollups itself; the rollups of version 2 are current, nothing to move.
_V3: Final = (
    """CREATE TABLE rollup_queue (
        id bytea NOT NULL,
        ts bigint NOT NULL,
        day integer NOT NULL,
        kind text NOT NULL,
        name text,
        "user" text,
        account text,
        session text,
        value bigint,
        integration text
    )""",
)

#: Version 4: the folds read the events themselves, by host and sequence, instead of a
#: queue the chunk wrote every event to a second time. What version 3 queued is folded
#: here (with the rollup statements of this uptake), so every host's mark starts at its
#: cursor; events stored before have no ``integration`` text, which only folds read.
_V4: Final = (
    "ALTER TABLE events ADD COLUMN integration text",
    "CREATE INDEX events_by_host ON events (host_id, seq)",
    """CREATE TABLE folds (
        host_id text PRIMARY KEY,
        folded bigint NOT NULL DEFAULT 0,
        events bigint NOT NULL DEFAULT 0
    )""",
    FRESH_TABLE,
    f"""WITH taken AS (DELETE FROM rollup_queue RETURNING {FRESH_COLUMNS})
    INSERT INTO fresh SELECT * FROM taken""",
    *ROLLUP_STATEMENTS,
    "DROP TABLE rollup_queue",
    "INSERT INTO folds SELECT host_id, cursor, events FROM hosts",
)

#: Forward migrations: ``MIGRATIONS[n]`` takes a database from version n to n + 1.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (_V1, _V2, _V3, _V4)
SCHEMA_VERSION: Final = len(MIGRATIONS)
