"""Pruning keeps the database equal to a fresh import of the kept events, and later reports.

Datasets come from the metrics strategies: users moving between accounts, seat changes,
explicit sessions (some spanning the cut), session-less bursts with gaps around 30
minutes, events on midnight, duplicates and shuffled arrival.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.aggregator.metrics.conftest import ingest_batches
from tests.support.datasets import BASE_DATE, BASE_DAY, DAY, Dataset, datasets
from uptake.protocol import Event, ReportFilters, content_event_id
from uptake_aggregator.errors import QueryError, StorageError
from uptake_aggregator.metrics import build_report
from uptake_aggregator.store.sqlite.outbox import EVENT_COLUMNS
from uptake_aggregator.store.sqlite.prune import plan_prune, prune, rollup_tables, vacuum_db
from uptake_aggregator.store.sqlite.rollups import Rollups
from uptake_aggregator.store.sqlite.storage import connect_readonly, read_events

_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
#: Tables that are neither raw events nor rollups.
_NOT_ROLLUPS = {"events", "counters", "schema_version", "meta"}


def _tables(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, sorted: equal dumps mean equal reports for any query.

    Feature ids depend on the order names first arrived, so ``user_feature`` is shown
    with its names and ``features`` as its names; local sequences on the order events
    were committed, so ``events`` is shown without them. The database's own identity
    and outbox (``meta``, the sequence counters) are left out.
    """
    shown = {
        "user_feature": "user_feature_named",
        "features": "(SELECT name FROM features)",
        "events": f"(SELECT {EVENT_COLUMNS} FROM events)",
        "counters": "(SELECT * FROM counters WHERE name = 'events')",
    }
    conn = sqlite3.connect(db)
    try:
        names = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                " AND name != 'meta'"
            )
        ]
        return {
            name: sorted(
                conn.execute(f"SELECT * FROM {shown.get(name, name)}").fetchall(), key=repr
            )
            for name in names
        }
    finally:
        conn.close()


def _stored(db: Path) -> list[Event]:
    conn = connect_readonly(db)
    try:
        return list(read_events(conn))
    finally:
        conn.close()


def _fresh_copy(db: Path, copy: Path) -> None:
    """Import the events of ``db`` into a new database ``copy``, in reverse order."""
    events = _stored(db)
    events.reverse()
    ingest_batches(copy, [events[i : i + 7] for i in range(0, len(events), 7)])


def _report(db: Path, filters: ReportFilters, today: dt.date | None = None) -> object:
    """The report, or the error it raises (an account filter may name no account)."""
    try:
        return build_report(db, filters, today=today)
    except QueryError as exc:
        return str(exc)


def _cut(offset: int) -> int:
    return (BASE_DAY + offset) * DAY


@given(data=datasets(), offset=st.integers(-1, 25))
@_SETTINGS
def test_prune_equals_a_fresh_import_of_the_kept_events(
    tmp_path_factory: pytest.TempPathFactory, data: Dataset, offset: int
) -> None:
    base = tmp_path_factory.mktemp("prune")
    db, fresh = base / "a.db", base / "b.db"
    ingest_batches(db, data.batches)
    planned = plan_prune(db, _cut(offset))

    result = prune(db, _cut(offset))

    assert result == planned
    assert result.stored_before == len(data.events)
    assert result.kept == len(_stored(db))
    assert all(event.ts >= _cut(offset) for event in _stored(db)) or result.anchors
    _fresh_copy(db, fresh)
    assert _tables(db) == _tables(fresh)
    assert _report(db, data.filters, data.today) == _report(fresh, data.filters, data.today)
    # Idempotent: a second prune at the same day finds nothing more to delete.
    again = prune(db, _cut(offset))
    assert (again.removed, again.kept) == (0, result.kept)
    assert _tables(db) == _tables(fresh)


#: A report window starting this many days after the cut looks back only after it (its
#: previous window when no longer than this, the trailing 30 days of MAU).
_LOOK_BACK = 30


def _later_copy(events: list[Event], days: int, rng: random.Random) -> list[Event]:
    """Some users' events, ``days`` later, without seats: the users and accounts left
    out must keep their account, last-seen time and seats through the anchors alone."""
    users = {event.user for event in events if rng.random() < 0.5}
    return [
        msgspec.structs.replace(
            event, ts=event.ts + days * DAY, id=content_event_id(event.ts, b"later" + event.id)
        )
        for event in events
        if event.user in users and event.kind != "seats"
    ]


def _without_look_back(report: object) -> object:
    """The figures of a report that depend on its window alone (not on the previous
    window, the trailing 7 / 30 days, the lifecycle's weeks reaching before ``since``, or
    a release's span before it)."""
    if not isinstance(report, dict):
        return report
    product = {k: v for k, v in report["product"].items() if k not in {"wau", "mau"}}
    look_back = {"growth", "health", "band", "flags", "weekly_active"}
    accounts = [
        {
            **{k: v for k, v in row.items() if k not in look_back},
            "flags": [flag for flag in row["flags"] if flag != "churn_risk"],
        }
        for row in report["accounts"]
    ]
    releases = [{"day": row["day"], "version": row["version"]} for row in report["releases"]]
    kept = {k: v for k, v in report.items() if k not in {"lifecycle", "power_users"}}
    return {**kept, "product": product, "accounts": accounts, "releases": releases}


def _window(day: int, length: int, filters: ReportFilters) -> ReportFilters:
    since = BASE_DATE + dt.timedelta(days=day)
    return msgspec.structs.replace(
        filters, since=since.isoformat(), until=(since + dt.timedelta(days=length)).isoformat()
    )


@given(
    data=datasets(),
    offset=st.integers(1, 23),
    length=st.integers(1, _LOOK_BACK),
    rng=st.randoms(use_true_random=False),
)
@_SETTINGS
def test_reports_after_the_cut_do_not_change(
    tmp_path_factory: pytest.TempPathFactory,
    data: Dataset,
    offset: int,
    length: int,
    rng: random.Random,
) -> None:
    db = tmp_path_factory.mktemp("later") / "a.db"
    later = offset + _LOOK_BACK
    ingest_batches(db, [*data.batches, _later_copy(data.events, later, rng)])
    filters = [data.filters, ReportFilters()]
    # A window starting at the cut: all but its look-back figures stay. One starting
    # _LOOK_BACK days after it: everything stays.
    at_cut = [_window(offset, length, f) for f in filters]
    after = [_window(later, length, f) for f in filters]

    def reports() -> list[object]:
        return [_without_look_back(_report(db, f)) for f in at_cut] + [
            _report(db, f) for f in after
        ]

    before = reports()
    prune(db, _cut(offset))
    assert reports() == before


def _event(ts: int, kind: str, number: int, **fields: Any) -> Event:
    return Event(id=content_event_id(ts, str(number).encode()), ts=ts, kind=kind, **fields)


def test_what_survives_before_the_cut(tmp_path: Path) -> None:
    cut = _cut(10)
    minute = 60 * 10**6
    events = {
        1: _event(_cut(1), "seats", 1, account="a1", value=5),
        2: _event(_cut(2), "seats", 2, account="a1", value=7),  # latest seats of a1
        3: _event(_cut(1) + 1, "login", 3, user="u1", account="a1"),
        4: _event(_cut(3), "feature", 4, name="f", user="u1", account="a2"),  # u1's account
        5: _event(_cut(4), "feature", 5, name="f", user="u1"),  # u1's latest
        6: _event(_cut(5), "login", 6, user="u2", account="a3"),
        7: _event(_cut(5) + 1, "release", 7, name="1.0"),
        # an implicit session across the cut: gaps of 25 and 20 minutes, then the cut
        8: _event(cut - 45 * minute, "feature", 8, name="f", user="u3"),
        9: _event(cut - 20 * minute, "feature", 9, name="f", user="u3"),
        10: _event(cut + minute, "feature", 10, name="f", user="u3"),
        11: _event(cut - 80 * minute, "feature", 11, name="f", user="u3"),  # 35 minutes
        16: _event(cut - 5 * DAY, "login", 16, user="u3"),  # u3's first
        # an explicit session across the cut, kept whole
        12: _event(cut - 60 * minute, "session_start", 12, user="u4", session="s"),
        13: _event(cut - 30 * minute, "feature", 13, name="g", user="u4", session="s"),
        14: _event(cut + 10 * minute, "session_end", 14, user="u4", session="s"),
        15: _event(cut - 180 * minute, "login", 15, user="u4", account="a4"),
        # a session ending just before the cut, kept whole: its 30-minute margin holds
        # the logout after the cut (else that logout would be a session of its own)
        17: _event(cut - 10 * minute, "session_start", 17, user="u5", session="t"),
        18: _event(cut - 8 * minute, "feature", 18, name="f", user="u5", session="t"),
        19: _event(cut - 7 * minute, "session_end", 19, user="u5", session="t"),
        31: _event(cut + 20 * minute, "logout", 31, user="u5"),
        # a session ending over an hour before the cut: only u8's latest event survives
        28: _event(cut - 100 * minute, "session_start", 28, user="u8", session="r"),
        29: _event(cut - 95 * minute, "feature", 29, name="f", user="u8", session="r"),
        30: _event(cut - 61 * minute, "session_end", 30, user="u8", session="r"),
        20: _event(_cut(2), "login", 20, user="u5", account="a1"),
        21: _event(_cut(6), "login", 21, user="u6", account="a2"),  # a2's latest
        22: _event(_cut(4), "feature", 22, name="f", account="a5"),  # a5's latest
        23: _event(_cut(3), "feature", 23, name="f", account="a5"),
        # gaps of exactly 30 minutes continue a session, 30 minutes and 1 us do not
        24: _event(cut - 40 * minute, "feature", 24, name="f", user="u7"),
        25: _event(cut - 10 * minute, "feature", 25, name="f", user="u7"),
        26: _event(cut + 20 * minute, "feature", 26, name="f", user="u7"),
        27: _event(cut - 70 * minute - 1, "feature", 27, name="f", user="u7"),
    }
    db = tmp_path / "u.db"
    ingest_batches(db, [list(events.values())])

    result = prune(db, cut)

    removed = {1, 3, 7, 11, 16, 23, 27, 28, 29}
    assert {e.id for e in _stored(db)} == {e.id for n, e in events.items() if n not in removed}
    assert (result.removed, result.kept, result.anchors) == (9, 22, 18)
    _fresh_copy(db, tmp_path / "fresh.db")
    assert _tables(db) == _tables(tmp_path / "fresh.db")


def test_prune_of_nothing_and_of_everything_before(tmp_path: Path) -> None:
    db = tmp_path / "u.db"
    ingest_batches(db, [[_event(_cut(5), "login", 1, user="u1")]])
    assert prune(db, _cut(5)).removed == 0
    assert prune(db, _cut(0)).removed == 0
    assert prune(db, _cut(9)).kept == 1  # the user's latest event: kept


def test_a_failure_mid_prune_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "u.db"
    events = [_event(_cut(day), "feature", day, name="f", user=f"u{day % 2}") for day in range(9)]
    ingest_batches(db, [events])
    before = _tables(db)

    def broken(self: Rollups, covered: object) -> Any:
        raise RuntimeError("disk on fire")
        yield  # a generator, like the real one

    monkeypatch.setattr(Rollups, "statements", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        prune(db, _cut(6))
    assert _tables(db) == before


def test_missing_database_and_bad_cut(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no database"):
        prune(tmp_path / "none.db", _cut(1))
    with pytest.raises(StorageError, match="no database"):
        plan_prune(tmp_path / "none.db", _cut(1))
    assert not (tmp_path / "none.db").exists()
    db = tmp_path / "u.db"
    ingest_batches(db, [[_event(_cut(5), "login", 1, user="u1")]])
    with pytest.raises(ValueError, match="start of a UTC day"):
        prune(db, _cut(1) + 1)


def test_the_prune_knows_every_rollup(tmp_path: Path) -> None:
    db = tmp_path / "u.db"
    ingest_batches(db, [])
    assert rollup_tables() == set(_tables(db)) - _NOT_ROLLUPS


def test_vacuum_shrinks_the_file(tmp_path: Path) -> None:
    db = tmp_path / "u.db"
    events = [
        _event(_cut(day) + i, "feature", day * 1000 + i, name="f", user=f"u{i % 50}")
        for day in range(10)
        for i in range(500)
    ]
    ingest_batches(db, [events])
    before = _tables(db)
    prune(db, _cut(9))
    pruned = _tables(db)
    size = vacuum_db(db)
    assert _tables(db) == pruned != before
    assert size < db.stat().st_size * 2  # the WAL was checkpointed into the file
    assert size == db.stat().st_size
