"""SQLite schema of the event store: raw events plus rollups, with forward migrations.

Raw events are keyed by their 16-byte time-ordered id in a WITHOUT ROWID table, so the
primary key is the dedup check and new rows land at the right edge of the B-tree.

Rollups are maintained at ingest, in the same transaction as the raw events
(``uptake_aggregator.store.sqlite.storage``), so a report reads rows in proportion to active
user-days rather than events. Days are UTC days since the epoch (``ts // 86_400_000_000``);
absent text keys are stored as ``''`` because primary-key columns of WITHOUT ROWID tables
cannot be NULL.

- ``user_day``: one row per (day, user) with activity: event and login counts, first/last ts.
  Serves DAU/WAU/MAU, stickiness, logins, segments, retention, last_seen.
- ``user_account``: per (user, day) the latest event that names an account, by (ts, id), so
  "a user's account" (docs/metrics.md) as of any date is one lookup.
- ``account_day``: per (account, day) the events naming that account (accounts seen).
- ``feature_day``: per (day, feature, user, account) feature event counts.
- ``user_feature``: per (user, feature) the first and last day of use. For a window that
  no (user, feature) pair's use straddles (first use before it, last use after it) -- the
  default window ending tomorrow, or one covering all history -- this decides exactly
  which pairs were used in the window, in SQL, from one row per pair. The feature is
  its ``features.id`` split as (``word``, ``bit``) = (id >> 6, id & 63), so SQLite sums
  each user's features into one 64-bit mask per word in key order (schema v3);
  ``user_feature_named`` shows the rows with the names.
- ``features``: the id of each feature name a ``user_feature`` row has used.
- ``feature_totals``: per (day, feature, account) event counts, where ``account`` is the
  event's account only for events without a user (``''`` otherwise): feature totals and
  the account of user-less feature events without touching per-user rows.
- ``integration_day``: per (day, account, user, integration) from the ``integration`` prop.
- ``seats``: the seat history of each account (latest before a day's end wins).
- ``releases``: ``release`` events (version markers for charts).
- ``sessions``: per explicit session id: first session_start ts, last session_end ts and
  the first/latest ts of any event carrying the id; user and account are those of the
  earliest such event (by ts, then id) that names one (``*_key`` = ts bytes + id, so the
  result does not depend on arrival order). Indexed by (user, start_ts, end_ts, last_ts)
  (schema v3), so a report reads each user's sessions together.
- ``activity_bucket``: per (user, 30-minute bucket) the first and last ts of events that
  carry no session id. Two events in one bucket are < 30 min apart, so the implicit
  sessions of docs/metrics.md split exactly at gaps between consecutive non-empty buckets.
- ``loose_events``: per user, the distinct ts of their events that carry no session id.
  The buckets above decide most implicit sessions; a bucket that an explicit session's
  30-minute margin cuts in two is read from here event by event (schema v4).
- ``first_use``: per (user, feature) the ts of the user's first event naming the feature
  (schema v5): time to first value (docs/metrics.md, *Activation*) without raw events.
- ``feature_day_users``: per (day, feature) the distinct users (``user != ''``) of its
  ``feature_day`` rows (schema v6), kept by a trigger on ``feature_day``: a feature's
  daily users over any span without reading per-user rows.
- ``user_span``: per user the first and last day with activity and the latest event's ts
  (schema v6): the known users without a pass over every (user, day).
- ``counters``: running totals (events stored) so status never scans ``events``; since
  schema v7 also ``seq`` (the last local sequence given) and ``forwarded`` (the forward
  cursor: every event with ``seq`` at or below it is in the central store; -1 while the
  database was never forwarded).
- ``meta``: named values of the database itself; ``host_id`` (schema v7) names it to a
  central store, random and created once.
"""

from __future__ import annotations

from typing import Final

from uptake_aggregator.units import DAY_US, SESSION_GAP_US, day_start_us

__all__ = ["DAY_US", "MIGRATIONS", "SCHEMA_VERSION", "SESSION_GAP_US", "day_start_us"]


_V1: Final = (
    """CREATE TABLE events (
        id BLOB PRIMARY KEY NOT NULL,
        ts INTEGER NOT NULL,
        kind TEXT NOT NULL,
        name TEXT,
        user TEXT,
        account TEXT,
        session TEXT,
        value INTEGER,
        props TEXT,
        source TEXT
    ) WITHOUT ROWID""",
    """CREATE TABLE user_day (
        day INTEGER NOT NULL,
        user TEXT NOT NULL,
        events INTEGER NOT NULL,
        logins INTEGER NOT NULL,
        first_ts INTEGER NOT NULL,
        last_ts INTEGER NOT NULL,
        PRIMARY KEY (day, user)
    ) WITHOUT ROWID""",
    "CREATE INDEX user_day_by_user ON user_day (user, day)",
    """CREATE TABLE user_account (
        user TEXT NOT NULL,
        day INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        id BLOB NOT NULL,
        account TEXT NOT NULL,
        PRIMARY KEY (user, day)
    ) WITHOUT ROWID""",
    """CREATE TABLE account_day (
        account TEXT NOT NULL,
        day INTEGER NOT NULL,
        events INTEGER NOT NULL,
        PRIMARY KEY (account, day)
    ) WITHOUT ROWID""",
    """CREATE TABLE feature_day (
        day INTEGER NOT NULL,
        feature TEXT NOT NULL,
        user TEXT NOT NULL,
        account TEXT NOT NULL,
        events INTEGER NOT NULL,
        PRIMARY KEY (day, feature, user, account)
    ) WITHOUT ROWID""",
    """CREATE TABLE user_feature (
        user TEXT NOT NULL,
        feature TEXT NOT NULL,
        first_day INTEGER NOT NULL,
        last_day INTEGER NOT NULL,
        PRIMARY KEY (user, feature)
    ) WITHOUT ROWID""",
    """CREATE TABLE feature_totals (
        day INTEGER NOT NULL,
        feature TEXT NOT NULL,
        account TEXT NOT NULL,
        events INTEGER NOT NULL,
        PRIMARY KEY (day, feature, account)
    ) WITHOUT ROWID""",
    """CREATE TABLE integration_day (
        day INTEGER NOT NULL,
        account TEXT NOT NULL,
        user TEXT NOT NULL,
        integration TEXT NOT NULL,
        events INTEGER NOT NULL,
        PRIMARY KEY (day, account, user, integration)
    ) WITHOUT ROWID""",
    """CREATE TABLE seats (
        account TEXT NOT NULL,
        ts INTEGER NOT NULL,
        id BLOB NOT NULL,
        seats INTEGER NOT NULL,
        PRIMARY KEY (account, ts, id)
    ) WITHOUT ROWID""",
    """CREATE TABLE releases (
        ts INTEGER NOT NULL,
        id BLOB NOT NULL,
        version TEXT NOT NULL,
        PRIMARY KEY (ts, id)
    ) WITHOUT ROWID""",
    """CREATE TABLE sessions (
        session TEXT PRIMARY KEY NOT NULL,
        user TEXT,
        account TEXT,
        user_key BLOB,
        account_key BLOB,
        start_ts INTEGER,
        end_ts INTEGER,
        first_ts INTEGER NOT NULL,
        last_ts INTEGER NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX sessions_by_start ON sessions (start_ts)",
    """CREATE TABLE activity_bucket (
        user TEXT NOT NULL,
        bucket INTEGER NOT NULL,
        first_ts INTEGER NOT NULL,
        last_ts INTEGER NOT NULL,
        events INTEGER NOT NULL,
        PRIMARY KEY (user, bucket)
    ) WITHOUT ROWID""",
    """CREATE TABLE counters (
        name TEXT PRIMARY KEY NOT NULL,
        value INTEGER NOT NULL
    ) WITHOUT ROWID""",
    "INSERT INTO counters (name, value) VALUES ('events', 0)",
)

#: Version 2: covering indexes for the report's widest reads, so each is one ordered
#: index scan instead of a table scan plus a sort or a primary-key lookup per row.
#: Measured on 10M events (CPU): per-user activity 90 -> 32 ms, explicit sessions
#: 142 -> 66 ms, distinct integrations 70 -> 21 ms. Ingest cost: the ``user_day``
#: index entry is rewritten on each (day, user) upsert (``logins`` is in it); the
#: ``sessions`` index was already rewritten on each session upsert (``start_ts`` is in
#: the upsert's SET list), it is only wider; integration rows are inserted once a day.
_V2: Final = (
    "DROP INDEX user_day_by_user",
    "CREATE INDEX user_day_by_user ON user_day (user, day, logins)",
    "DROP INDEX sessions_by_start",
    "CREATE INDEX sessions_by_start ON sessions (start_ts, user, end_ts, last_ts)",
    "CREATE INDEX integration_day_by_user ON integration_day (user, account, integration, day)",
)

#: Version 3, two changes that let SQLite hand a report per-user totals in key order:
#:
#: - ``user_feature`` keys a feature by its id's (word, bit) rather than by its name, so
#:   a report sums each user's features into bit masks (one row per user and word)
#:   instead of concatenating, splitting and hashing every (user, feature) name pair.
#:   Measured on 10M events (CPU): the report's feature part 216 -> 120 ms. Ingest
#:   cost: a ``features`` seek per ``user_feature`` row that is not a no-op (about one
#:   per (user, feature, day)).
#: - The sessions index leads with the user instead of the start: per-user session
#:   counts and totals come out of a GROUP BY without a sort, instead of a Python pass
#:   over every session (explicit sessions 216 -> ~140 ms). A window is then a filter on
#:   the index rather than a range of it (a scan of every session: ~40 ms for 450k).
#:   Same ingest cost: it replaces the version 2 index, with the same columns.
_V3: Final = (
    "DROP INDEX sessions_by_start",
    "CREATE INDEX sessions_by_user ON sessions (user, start_ts, end_ts, last_ts)",
    "CREATE TABLE features (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
    "INSERT INTO features (name) SELECT DISTINCT feature FROM user_feature ORDER BY feature",
    """CREATE TABLE user_feature_v3 (
        user TEXT NOT NULL,
        word INTEGER NOT NULL,
        bit INTEGER NOT NULL,
        first_day INTEGER NOT NULL,
        last_day INTEGER NOT NULL,
        PRIMARY KEY (user, word, bit)
    ) WITHOUT ROWID""",
    "INSERT INTO user_feature_v3 SELECT u.user, f.id >> 6, f.id & 63, u.first_day, u.last_day"
    " FROM user_feature AS u JOIN features AS f ON f.name = u.feature",
    "DROP TABLE user_feature",
    "ALTER TABLE user_feature_v3 RENAME TO user_feature",
    "CREATE VIEW user_feature_named AS SELECT u.user, f.name AS feature, u.first_day, u.last_day"
    " FROM user_feature AS u JOIN features AS f ON f.id = (u.word << 6) | u.bit",
)

#: Version 4: a session-less event within 30 minutes of an explicit session of its user
#: belongs to that session and starts no implicit one (docs/metrics.md, *Sessions*). The
#: buckets cannot say which of their events lie inside such a margin, so the session-less
#: events are kept one row per (user, ts) too, built here from the stored events so that
#: an old database reports exactly as a fresh import of its events. Ingest cost: one
#: ``INSERT OR IGNORE`` per session-less event with a user (none for events in sessions).
_V4: Final = (
    """CREATE TABLE loose_events (
        user TEXT NOT NULL,
        ts INTEGER NOT NULL,
        PRIMARY KEY (user, ts)
    ) WITHOUT ROWID""",
    "INSERT OR IGNORE INTO loose_events SELECT user, ts FROM events"
    " WHERE coalesce(session, '') = '' AND coalesce(user, '') != ''",
)

#: Version 5: the first use of each (user, feature), to the microsecond: a user's time to
#: first value (docs/metrics.md, *Activation*) is the first use of a core feature minus
#: their first event, and ``user_feature`` keeps days only. Built here from the stored
#: events. Ingest cost: one upsert per (user, feature, day) touched by a transaction,
#: a no-op (``WHERE``) unless the event is older than the stored first use.
_V5: Final = (
    """CREATE TABLE first_use (
        user TEXT NOT NULL,
        feature TEXT NOT NULL,
        ts INTEGER NOT NULL,
        PRIMARY KEY (user, feature)
    ) WITHOUT ROWID""",
    "INSERT INTO first_use SELECT user, name, min(ts) FROM events"
    " WHERE kind = 'feature' AND name IS NOT NULL AND coalesce(user, '') != ''"
    " GROUP BY user, name",
)

#: Version 6, two rollups that spare a report reads of every per-user row:
#:
#: - ``feature_day_users``: distinct users per (day, feature), the sum the engagement
#:   figures read over every day of a window and of each release's before/after spans
#:   (docs/metrics.md, *Engagement*). Counting them from ``feature_day`` walked every
#:   (day, feature, user) row each time: 2.4 s of CPU for the 90 days of 10M events. A
#:   trigger keeps the count, so every writer of ``feature_day`` (ingest, the prune's
#:   rebuild) keeps it exact: a row inserted for a user who has no row of that (day,
#:   feature) under another account adds one (an upsert that updates an existing row
#:   inserts nothing and fires nothing). Built here from ``feature_day``. Ingest cost: a
#:   primary-key probe and an upsert of a small table per new ``feature_day`` row
#:   (measured +2-16% of ``Storage.ingest`` CPU, median +7%).
#: - ``user_span``: each user's first and last active day and latest event, so the known
#:   users (every report) are one row per user instead of a GROUP BY over every
#:   ``user_day`` row (~75 ms of CPU for 10M events over 90 days). Built here from
#:   ``user_day``. Ingest cost: one upsert per user of a transaction, a no-op (``WHERE``)
#:   unless the span grows.
_V6: Final = (
    """CREATE TABLE feature_day_users (
        day INTEGER NOT NULL,
        feature TEXT NOT NULL,
        users INTEGER NOT NULL,
        PRIMARY KEY (day, feature)
    ) WITHOUT ROWID""",
    """CREATE TRIGGER feature_day_new_user AFTER INSERT ON feature_day
    WHEN NEW.user != '' AND NOT EXISTS (
        SELECT 1 FROM feature_day AS d WHERE d.day = NEW.day AND d.feature = NEW.feature
        AND d.user = NEW.user AND d.account != NEW.account)
    BEGIN
        INSERT INTO feature_day_users VALUES (NEW.day, NEW.feature, 1)
        ON CONFLICT (day, feature) DO UPDATE SET users = users + 1;
    END""",
    "INSERT INTO feature_day_users SELECT day, feature, count(DISTINCT user) FROM feature_day"
    " WHERE user != '' GROUP BY day, feature",
    """CREATE TABLE user_span (
        user TEXT PRIMARY KEY NOT NULL,
        first_day INTEGER NOT NULL,
        last_day INTEGER NOT NULL,
        last_ts INTEGER NOT NULL
    ) WITHOUT ROWID""",
    "INSERT INTO user_span SELECT user, min(day), max(day), max(last_ts) FROM user_day"
    " GROUP BY user",
)

#: Version 7: the outbox of forwarding to a central store (README, *Scale out*). Each
#: event gets a local sequence number when its transaction commits (``events.seq``, in
#: commit order: a duplicate gets none, as it is not stored), so "every event after the
#: forward cursor" is one index range however old the events' own times are. Stored
#: events are numbered in id order here. The database gets its ``host_id``, and the
#: ``seq`` and ``forwarded`` counters. Ingest cost: one more column per row and one
#: index entry at the right edge of ``events_by_seq``.
_V7: Final = (
    "ALTER TABLE events ADD COLUMN seq INTEGER",
    "UPDATE events SET seq = numbered.seq"
    " FROM (SELECT id, row_number() OVER (ORDER BY id) AS seq FROM events) AS numbered"
    " WHERE events.id = numbered.id",
    "CREATE INDEX events_by_seq ON events (seq)",
    """CREATE TABLE meta (
        name TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
    ) WITHOUT ROWID""",
    "INSERT INTO meta VALUES ('host_id', lower(hex(randomblob(16))))",
    "INSERT INTO counters SELECT 'seq', count(*) FROM events",
    "INSERT INTO counters VALUES ('forwarded', -1)",
)

#: Forward migrations: ``MIGRATIONS[n]`` takes a database from version n to n + 1.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7)
SCHEMA_VERSION: Final = len(MIGRATIONS)
