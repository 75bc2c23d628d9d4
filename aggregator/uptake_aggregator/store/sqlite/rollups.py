"""Rollup deltas of one ingest transaction, and the upserts that merge them into SQLite.

``Storage`` folds the events new in a transaction into a ``Rollups`` (cheap Python, one
group per (day, user, account) burst), then runs ``Rollups.statements`` inside the same
transaction, so rollups and raw events always commit together. The tables and their
meaning are described in ``uptake_aggregator.store.sqlite.schema``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, Final

from uptake.protocol import Event
from uptake_aggregator.store.sqlite.schema import DAY_US, SESSION_GAP_US

__all__ = ["Covered", "Rollups"]

#: Later than any event's ts: "no event has named a user/account/start yet".
_NEVER: Final = 1 << 64
#: Most (user, feature) pairs ``Covered`` remembers.
_MAX_COVERED: Final = 250_000

_UPSERTS: Final = {
    "user_day": """INSERT INTO user_day VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (day, user) DO UPDATE SET
            events = events + excluded.events, logins = logins + excluded.logins,
            first_ts = min(first_ts, excluded.first_ts),
            last_ts = max(last_ts, excluded.last_ts)""",
    # Rows without logins leave ``logins`` out of the SET list, so SQLite leaves the
    # (user, day, logins) index entry alone instead of rewriting it (schema v2).
    "user_day_no_logins": """INSERT INTO user_day VALUES (?, ?, ?, 0, ?, ?)
        ON CONFLICT (day, user) DO UPDATE SET
            events = events + excluded.events,
            first_ts = min(first_ts, excluded.first_ts),
            last_ts = max(last_ts, excluded.last_ts)""",
    "user_account": """INSERT INTO user_account VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (user, day) DO UPDATE SET
            ts = excluded.ts, id = excluded.id, account = excluded.account
        WHERE (excluded.ts, excluded.id) > (user_account.ts, user_account.id)""",
    "user_span": """INSERT INTO user_span VALUES (?, ?, ?, ?)
        ON CONFLICT (user) DO UPDATE SET
            first_day = min(first_day, excluded.first_day),
            last_day = max(last_day, excluded.last_day),
            last_ts = max(last_ts, excluded.last_ts)
        WHERE excluded.first_day < first_day OR excluded.last_ts > last_ts""",
    "account_day": """INSERT INTO account_day VALUES (?, ?, ?)
        ON CONFLICT (account, day) DO UPDATE SET events = events + excluded.events""",
    "feature_day": """INSERT INTO feature_day VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (day, feature, user, account) DO UPDATE SET
            events = events + excluded.events""",
    # Rows name the feature: SQLite looks its id up (``features`` first gets the new
    # names), so ids are assigned in the same transaction, never by Python state that a
    # rollback would leave behind.
    "features": "INSERT OR IGNORE INTO features (name) VALUES (?)",
    "user_feature": """INSERT INTO user_feature
        SELECT ?1, id >> 6, id & 63, ?3, ?4 FROM features WHERE name = ?2
        ON CONFLICT (user, word, bit) DO UPDATE SET
            first_day = min(first_day, excluded.first_day),
            last_day = max(last_day, excluded.last_day)
        WHERE excluded.first_day < first_day OR excluded.last_day > last_day""",
    "feature_totals": """INSERT INTO feature_totals VALUES (?, ?, ?, ?)
        ON CONFLICT (day, feature, account) DO UPDATE SET events = events + excluded.events""",
    "integration_day": """INSERT INTO integration_day VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (day, account, user, integration) DO UPDATE SET
            events = events + excluded.events""",
    "seats": "INSERT OR IGNORE INTO seats VALUES (?, ?, ?, ?)",
    "releases": "INSERT OR IGNORE INTO releases VALUES (?, ?, ?)",
    "sessions": """INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (session) DO UPDATE SET
            user = CASE WHEN excluded.user_key < coalesce(sessions.user_key, x'FF')
                        THEN excluded.user ELSE sessions.user END,
            user_key = coalesce(min(sessions.user_key, excluded.user_key),
                                sessions.user_key, excluded.user_key),
            account = CASE WHEN excluded.account_key < coalesce(sessions.account_key, x'FF')
                           THEN excluded.account ELSE sessions.account END,
            account_key = coalesce(min(sessions.account_key, excluded.account_key),
                                   sessions.account_key, excluded.account_key),
            start_ts = coalesce(min(sessions.start_ts, excluded.start_ts),
                                sessions.start_ts, excluded.start_ts),
            end_ts = coalesce(max(sessions.end_ts, excluded.end_ts),
                              sessions.end_ts, excluded.end_ts),
            first_ts = min(sessions.first_ts, excluded.first_ts),
            last_ts = max(sessions.last_ts, excluded.last_ts)""",
    "activity_bucket": """INSERT INTO activity_bucket VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (user, bucket) DO UPDATE SET
            first_ts = min(first_ts, excluded.first_ts),
            last_ts = max(last_ts, excluded.last_ts),
            events = events + excluded.events""",
    "loose_events": "INSERT OR IGNORE INTO loose_events VALUES (?, ?)",
    "first_use": """INSERT INTO first_use VALUES (?, ?, ?)
        ON CONFLICT (user, feature) DO UPDATE SET ts = excluded.ts
        WHERE excluded.ts < first_use.ts""",
}


class _Group:
    """The new events of one (day, user, account) in a transaction (user/account may be None).

    Bursts of one user's events arrive together, so the hot loop keeps the current group
    and only looks a group up when (day, user, account) changes; every per-table row is
    derived from the groups once per transaction in ``statements``.
    """

    __slots__ = (
        "bucket",
        "bucket_no",
        "events",
        "features",
        "first",
        "first_use",
        "last",
        "last_id",
        "logins",
    )

    def __init__(self, ts: int, event_id: bytes) -> None:
        self.events = 0
        self.logins = 0
        self.first = ts
        self.last = ts
        self.last_id = event_id  # id of the latest event by (ts, id): user_account
        self.features: dict[str, int] = {}
        self.first_use: dict[str, int] = {}  # feature -> its earliest event's ts here
        # The activity bucket of the latest session-less event (a list shared with
        # ``Rollups.activity_bucket``), so consecutive events skip the lookup.
        self.bucket_no = -1
        self.bucket: list[int] = []


class _Session:
    """One session id's deltas; ``*_ts``/``*_id`` order the events naming a user/account."""

    __slots__ = (
        "account",
        "account_id",
        "account_ts",
        "end",
        "first",
        "last",
        "start",
        "user",
        "user_id",
        "user_ts",
    )

    def __init__(self, ts: int) -> None:
        self.user: str | None = None
        self.account: str | None = None
        self.user_ts = _NEVER
        self.user_id = b""
        self.account_ts = _NEVER
        self.account_id = b""
        self.start = _NEVER
        self.end = -1
        self.first = ts
        self.last = ts

    def row(self, session: str) -> tuple[Any, ...]:
        """The ``sessions`` upsert row (order keys: ts as 8 big-endian bytes + id)."""
        return (
            session,
            self.user,
            self.account,
            None if self.user is None else self.user_ts.to_bytes(8, "big") + self.user_id,
            None if self.account is None else self.account_ts.to_bytes(8, "big") + self.account_id,
            None if self.start == _NEVER else self.start,
            None if self.end < 0 else self.end,
            self.first,
            self.last,
        )


class Covered:
    """(user, feature) pairs whose stored ``user_feature`` span covers ``day``.

    Spans only grow (nothing deletes or narrows them), so a committed pair stays covered
    and a (user, feature, day, day) row for it is a no-op upsert: ``statements`` leaves
    those out, most ``user_feature`` rows once a day is under way. Only the latest day is
    kept, and at most ``_MAX_COVERED`` pairs, to bound memory (~40 bytes a pair).
    """

    __slots__ = ("day", "features", "size")

    def __init__(self) -> None:
        self.day = -1
        self.features: dict[str, set[str]] = {}  # user -> features
        self.size = 0

    def add(self, rows: list[tuple[Any, ...]]) -> None:
        """Record committed ``user_feature`` rows (user, feature, day, day)."""
        for user, name, day, _ in rows:
            if day != self.day:
                if day < self.day:
                    continue
                self.day, self.features, self.size = day, {}, 0
            if self.size >= _MAX_COVERED:
                continue
            known = self.features.get(user)
            if known is None:
                known = self.features[user] = set()
            known.add(sys.intern(name))  # few distinct names: share them
            self.size += 1


class Rollups:
    """Rollup deltas of the events new in one transaction, merged in memory first.

    Merging in Python means one upsert per touched (day, user) etc. rather than one per
    event: a batch of 1000 events from a few users touches a handful of rollup rows.
    Events are folded into per-(day, user, account) groups (``_Group``) and per-session
    rows (``_Session``); the per-table rows are derived from them in ``statements``.
    """

    def __init__(self) -> None:
        self.groups: dict[tuple[int, str | None, str | None], _Group] = {}
        self.sessions: dict[str, _Session] = {}
        self.activity_bucket: dict[tuple[str, int], list[int]] = {}  # first, last, events
        self.loose_events: list[tuple[str, int]] = []  # (user, ts) without a session id
        self.integration_day: dict[tuple[int, str, str, str], int] = {}
        self.seats: list[tuple[str, int, bytes, int]] = []
        self.releases: list[tuple[int, bytes, str]] = []
        self.user_feature_rows: list[tuple[Any, ...]] = []

    def add(self, events: Iterable[Event]) -> None:
        """Fold new events into the deltas (a hot loop: locals and plain comparisons)."""
        groups = self.groups
        sessions = self.sessions
        buckets = self.activity_bucket
        loose = self.loose_events
        group = _Group(0, b"")
        group_day = -1
        group_user: str | None = None
        group_account: str | None = None
        row = _Session(0)
        row_session: str | None = None
        for event in events:
            ts = event.ts
            # An empty id names no one (docs/metrics.md): the rollups key "no user" as ''.
            user = event.user or None
            account = event.account or None
            day = ts // DAY_US
            if day != group_day or user != group_user or account != group_account:
                key = (day, user, account)
                found = groups.get(key)
                if found is None:
                    found = groups[key] = _Group(ts, event.id)
                group, group_day, group_user, group_account = found, day, user, account
            group.events += 1
            if ts > group.last:
                group.last = ts
                group.last_id = event.id
            elif ts < group.first:
                group.first = ts
            elif ts == group.last and event.id > group.last_id:
                group.last_id = event.id
            kind = event.kind
            if kind == "feature":
                name = event.name
                if name is not None:
                    features = group.features
                    features[name] = features.get(name, 0) + 1
                    firsts = group.first_use
                    if ts < firsts.get(name, _NEVER):
                        firsts[name] = ts
            elif kind == "login":
                group.logins += 1
            elif kind == "seats":
                if account is not None and event.value is not None:
                    self.seats.append((account, ts, event.id, event.value))
            elif kind == "release" and event.name is not None:
                self.releases.append((ts, event.id, event.name))
            session = event.session or None
            if session is not None:
                if session != row_session:
                    found_row = sessions.get(session)
                    if found_row is None:
                        found_row = sessions[session] = _Session(ts)
                    row, row_session = found_row, session
                if ts > row.last:
                    row.last = ts
                elif ts < row.first:
                    row.first = ts
                # The earliest event (by ts, then id) naming a user/account decides.
                if (
                    user is not None
                    and ts <= row.user_ts
                    and (ts < row.user_ts or event.id < row.user_id)
                ):
                    row.user, row.user_ts, row.user_id = user, ts, event.id
                if (
                    account is not None
                    and ts <= row.account_ts
                    and (ts < row.account_ts or event.id < row.account_id)
                ):
                    row.account, row.account_ts, row.account_id = account, ts, event.id
                if kind == "session_start":
                    row.start = min(row.start, ts)
                elif kind == "session_end" and ts > row.end:
                    row.end = ts
            elif user is not None:
                loose.append((user, ts))
                bucket_no = ts // SESSION_GAP_US
                if bucket_no != group.bucket_no:
                    bkey = (user, bucket_no)
                    bucket = buckets.get(bkey)
                    if bucket is None:
                        bucket = buckets[bkey] = [ts, ts, 0]
                    group.bucket, group.bucket_no = bucket, bucket_no
                bucket = group.bucket
                bucket[2] += 1
                if ts < bucket[0]:
                    bucket[0] = ts
                elif ts > bucket[1]:
                    bucket[1] = ts
            props = event.props
            if props and "integration" in props:
                ikey = (day, account or "", user or "", str(props["integration"]))
                self.integration_day[ikey] = self.integration_day.get(ikey, 0) + 1

    def statements(self, covered: Covered) -> Iterable[tuple[str, list[tuple[Any, ...]]]]:
        """Yield (upsert SQL, rows) for every rollup that has something to write.

        A (day, user) or (user, feature) of several groups (a user under two accounts, or
        across midnight) gets one row per group: the upserts merge those exactly as they
        merge a row with the stored one, so only the many-to-one rollups merge here.
        ``user_feature`` rows of pairs in ``covered`` are no-ops and left out; the rows
        written are kept in ``user_feature_rows`` for ``Covered.add`` after the commit.
        """
        user_day: list[tuple[Any, ...]] = []
        user_day_no_logins: list[tuple[Any, ...]] = []
        user_account: list[tuple[Any, ...]] = []
        feature_day: list[tuple[Any, ...]] = []
        user_feature: list[tuple[Any, ...]] = []
        first_use: list[tuple[Any, ...]] = []
        account_day: dict[tuple[str, int], int] = {}
        user_span: dict[str, list[int]] = {}  # user: first day, last day, last ts
        feature_totals: dict[tuple[int, str], dict[str, int]] = {}  # (day, account)
        for (day, user, account), group in self.groups.items():
            if account is not None:
                akey = (account, day)
                account_day[akey] = account_day.get(akey, 0) + group.events
            if user is not None:
                span = user_span.get(user)
                if span is None:
                    user_span[user] = [day, day, group.last]
                else:
                    span[0] = min(span[0], day)
                    span[1] = max(span[1], day)
                    span[2] = max(span[2], group.last)
                if group.logins:
                    user_day.append(
                        (day, user, group.events, group.logins, group.first, group.last)
                    )
                else:
                    user_day_no_logins.append((day, user, group.events, group.first, group.last))
                if account is not None:
                    user_account.append((user, day, group.last, group.last_id, account))
            features = group.features
            if not features:
                continue
            feature_account = account or ""
            if user is None:
                feature_day += [(day, name, "", feature_account, n) for name, n in features.items()]
                # feature_totals names the account only for user-less events.
                tkey = (day, feature_account)
            else:
                feature_day += [
                    (day, name, user, feature_account, n) for name, n in features.items()
                ]
                first_use += [(user, name, ts) for name, ts in group.first_use.items()]
                known = covered.features.get(user) if day == covered.day else None
                if known is None:
                    user_feature += [(user, name, day, day) for name in features]
                else:
                    user_feature += [
                        (user, name, day, day) for name in features if name not in known
                    ]
                tkey = (day, "")
            totals = feature_totals.get(tkey)
            if totals is None:
                feature_totals[tkey] = dict(features)
            else:
                for name, count in features.items():
                    totals[name] = totals.get(name, 0) + count
        self.user_feature_rows = user_feature
        tables: dict[str, list[tuple[Any, ...]]] = {
            "user_day": user_day,
            "user_day_no_logins": user_day_no_logins,
            "user_account": user_account,
            "user_span": [(user, *span) for user, span in user_span.items()],
            "account_day": [(*k, n) for k, n in account_day.items()],
            "feature_day": feature_day,
            "features": [(name,) for name in sorted({row[1] for row in user_feature})],
            "user_feature": user_feature,
            "feature_totals": [
                (day, name, account, n)
                for (day, account), totals in feature_totals.items()
                for name, n in totals.items()
            ],
            "integration_day": [(*k, n) for k, n in self.integration_day.items()],
            "seats": self.seats,
            "releases": self.releases,
            "sessions": [row.row(session) for session, row in self.sessions.items()],
            "activity_bucket": [(*k, *v) for k, v in self.activity_bucket.items()],
            "loose_events": self.loose_events,
            "first_use": first_use,
        }
        for table, rows in tables.items():
            if rows:
                yield _UPSERTS[table], rows
