"""Storage: each event stored once, rollups equal to a from-scratch computation."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from uptake.protocol import Event, new_event_id
from uptake_aggregator.errors import StorageError
from uptake_aggregator.store.sqlite.outbox import EVENT_COLUMNS
from uptake_aggregator.store.sqlite.schema import SCHEMA_VERSION
from uptake_aggregator.store.sqlite.storage import IngestResult, Storage, connect_readonly

#: What a snapshot compares, by name: every table but the outbox's commit-order numbering.
ROLLUP_TABLES = {
    "events": f"(SELECT {EVENT_COLUMNS} FROM events)",
    **{
        table: table
        for table in (
            "user_day",
            "user_span",
            "user_account",
            "account_day",
            "feature_day",
            "feature_day_users",
            "user_feature_named",
            "feature_totals",
            "integration_day",
            "seats",
            "releases",
            "sessions",
            "activity_bucket",
        )
    },
    "counters": "(SELECT * FROM counters WHERE name = 'events')",
}
DAY = 86_400_000_000
T0 = 1_750_000_000_000_000


def ingest(path: Path, batches: list[list[Event]]) -> list[IngestResult]:
    async def run() -> list[IngestResult]:
        storage = await Storage.open(path)
        try:
            return await storage.ingest(batches)
        finally:
            await storage.close()

    return anyio.run(run)


def ingest_calls(path: Path, calls: list[list[list[Event]]]) -> list[list[IngestResult]]:
    """Several ``ingest`` calls (transactions) on one open ``Storage``."""

    async def run() -> list[list[IngestResult]]:
        storage = await Storage.open(path)
        try:
            return [await storage.ingest(batches) for batches in calls]
        finally:
            await storage.close()

    return anyio.run(run)


def snapshot(path: Path) -> dict[str, list[Any]]:
    conn = connect_readonly(path)
    try:
        return {
            table: sorted(conn.execute(f"SELECT * FROM {source}").fetchall())
            for table, source in ROLLUP_TABLES.items()
        }
    finally:
        conn.close()


@pytest.fixture
def db_paths(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    yield tmp_path / "a.db", tmp_path / "b.db"


@st.composite
def small_events(draw: st.DrawFn) -> Event:
    ts = T0 + draw(st.integers(min_value=0, max_value=3 * DAY))
    kind = draw(st.sampled_from(["login", "feature", "session_start", "session_end", "seats"]))
    return Event(
        id=new_event_id(ts),
        ts=ts,
        kind=kind,
        name=draw(st.sampled_from(["export", "import"])) if kind == "feature" else None,
        user=draw(st.none() | st.sampled_from(["u1", "u2", "u3"])),
        account=draw(st.none() | st.sampled_from(["acme", "globex"])),
        session=draw(st.none() | st.sampled_from(["s1", "s2"])),
        value=draw(st.integers(0, 100)) if kind == "seats" else None,
        props=draw(st.none() | st.just({"integration": "slack"})),
    )


@given(
    st.lists(small_events(), min_size=1, max_size=40),
    st.randoms(use_true_random=False),
    st.integers(min_value=1, max_value=7),
)
def test_any_split_order_and_resend_stores_each_event_once(
    tmp_path_factory: pytest.TempPathFactory, events: list[Event], rng: Any, split: int
) -> None:
    base = tmp_path_factory.mktemp("db")
    once, messy = base / "once.db", base / "messy.db"
    ingest(once, [events])

    resent = events + rng.sample(events, k=len(events) // 2)
    rng.shuffle(resent)
    batches = [resent[i : i + split] for i in range(0, len(resent), split)]
    results = ingest(messy, batches)

    assert sum(r.accepted for r in results) == len(events)
    assert sum(r.accepted + r.duplicates for r in results) == len(resent)
    assert snapshot(messy) == snapshot(once)
    assert snapshot(messy)["feature_day_users"] == distinct_feature_day_users(messy)
    assert snapshot(messy)["user_span"] == user_spans(messy)


def user_spans(path: Path) -> list[tuple[str, int, int, int]]:
    """What ``user_span`` must hold: each user's first and last day and latest ts."""
    conn = connect_readonly(path)
    try:
        return conn.execute(
            "SELECT user, min(day), max(day), max(last_ts) FROM user_day GROUP BY user"
            " ORDER BY user"
        ).fetchall()
    finally:
        conn.close()


def distinct_feature_day_users(path: Path) -> list[tuple[int, str, int]]:
    """What ``feature_day_users`` must hold: distinct users per (day, feature), counted."""
    conn = connect_readonly(path)
    try:
        return conn.execute(
            "SELECT day, feature, count(DISTINCT user) FROM feature_day WHERE user != ''"
            " GROUP BY day, feature ORDER BY day, feature"
        ).fetchall()
    finally:
        conn.close()


@given(
    st.lists(small_events(), min_size=1, max_size=40),
    st.randoms(use_true_random=False),
    st.integers(min_value=1, max_value=6),
)
def test_transactions_of_one_storage_store_what_one_transaction_does(
    tmp_path_factory: pytest.TempPathFactory, events: list[Event], rng: Any, calls: int
) -> None:
    # Storage keeps state between transactions (user_feature pairs known to be stored):
    # days in any order and resent events must still give the tables of one transaction.
    base = tmp_path_factory.mktemp("db")
    once, split = base / "once.db", base / "split.db"
    ingest(once, [events])

    resent = events + rng.sample(events, k=len(events) // 2)
    rng.shuffle(resent)
    size = -(-len(resent) // calls)
    results = ingest_calls(split, [[resent[i : i + size]] for i in range(0, len(resent), size)])

    assert sum(r.accepted for call in results for r in call) == len(events)
    assert snapshot(split) == snapshot(once)


def test_user_feature_spans_grow_across_transactions(db_paths: tuple[Path, Path]) -> None:
    path, _ = db_paths

    def used(day: int) -> list[list[Event]]:
        ts = T0 + day * DAY
        return [[Event(id=new_event_id(ts), ts=ts, kind="feature", name="f", user="u1")]]

    ingest_calls(path, [used(1), used(1), used(0), used(2), used(1), used(0)])
    assert snapshot(path)["user_feature_named"] == [("u1", "f", T0 // DAY, T0 // DAY + 2)]


def test_duplicates_are_reported_per_batch(db_paths: tuple[Path, Path]) -> None:
    path, _ = db_paths
    events = [Event(id=new_event_id(T0 + i), ts=T0 + i, kind="login", user="u1") for i in range(5)]
    assert ingest(path, [events[:3], events]) == [IngestResult(3, 0), IngestResult(2, 3)]
    assert ingest(path, [events + events[:1]]) == [IngestResult(0, 6)]
    tables = snapshot(path)
    assert len(tables["events"]) == 5
    assert tables["user_day"] == [(T0 // DAY, "u1", 5, 5, T0, T0 + 4)]
    assert tables["counters"] == [("events", 5)]


def test_rollups_follow_the_definitions(db_paths: tuple[Path, Path]) -> None:
    path, _ = db_paths
    ids = iter(new_event_id(T0 + i) for i in range(100))
    events = [
        Event(id=next(ids), ts=T0, kind="seats", account="acme", value=10),
        Event(id=next(ids), ts=T0 + 1, kind="login", user="u1", account="acme"),
        Event(id=next(ids), ts=T0 + 2, kind="session_start", user="u1", session="s"),
        Event(id=next(ids), ts=T0 + 5, kind="feature", name="f", user="u1", session="s"),
        Event(id=next(ids), ts=T0 + 9, kind="session_end", user="u1", session="s"),
        Event(id=next(ids), ts=T0 + 10, kind="feature", name="f", user="u1", account="globex"),
        Event(id=next(ids), ts=T0 + 3_600_000_000, kind="feature", name="g", user="u1"),
        Event(id=next(ids), ts=T0 + 11, kind="release", name="2.0"),
    ]
    ingest(path, [events])
    tables = snapshot(path)
    day = T0 // DAY
    assert tables["seats"] == [("acme", T0, events[0].id, 10)]
    assert tables["releases"] == [(T0 + 11, events[7].id, "2.0")]
    [session] = tables["sessions"]
    assert session[:3] == ("s", "u1", None)
    assert session[5:] == (T0 + 2, T0 + 9, T0 + 2, T0 + 9)
    # the latest account-naming event of the day wins
    assert tables["user_account"] == [("u1", day, T0 + 10, events[5].id, "globex")]
    # events without a session id land in 30-minute buckets
    buckets = [(b[2], b[3], b[4]) for b in tables["activity_bucket"]]
    assert buckets == [(T0 + 1, T0 + 10, 2), (T0 + 3_600_000_000, T0 + 3_600_000_000, 1)]
    assert sorted(r[1:] for r in tables["feature_day"]) == [
        ("f", "u1", "", 1),
        ("f", "u1", "globex", 1),
        ("g", "u1", "", 1),
    ]
    # u1 used f under two accounts that day: one user
    assert tables["feature_day_users"] == [(day, "f", 1), (day, "g", 1)]
    assert tables["user_span"] == [("u1", day, day, T0 + 3_600_000_000)]


def test_readonly_open_names_the_missing_database(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no database at"):
        connect_readonly(tmp_path / "absent.db")


def test_newer_schema_is_refused(db_paths: tuple[Path, Path]) -> None:
    path, _ = db_paths
    ingest(path, [])
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION + 1,))
    with pytest.raises(StorageError, match="newer than this uptake"):
        ingest(path, [])
