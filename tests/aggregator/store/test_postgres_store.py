"""The central PostgreSQL store's write path on a real server (tests/support/postgres.py)."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import time
from pathlib import Path

import pytest

from tests.aggregator.metrics.conftest import ingest_batches
from tests.support.daemon import make_events
from tests.support.postgres import PostgresCluster, outbox_rows, truncate_central
from uptake.protocol import ReportFilters
from uptake_aggregator.metrics import build_report
from uptake_aggregator.store import open_store
from uptake_aggregator.store.postgres.central import CentralWriter
from uptake_aggregator.store.postgres.connection import migrate
from uptake_aggregator.store.postgres.urls import redact

_T0 = time.time_ns() // 1000 - 7_200_000_000


@pytest.fixture(scope="module")
def central(postgres: PostgresCluster) -> str:
    url = postgres.new_database()
    migrate(url)
    return url


def test_forward_is_idempotent_per_host_cursor(central: str) -> None:
    from uptake.protocol import Event, content_event_id

    truncate_central(central)
    events = [
        Event(id=content_event_id(10**15 + i, b"x"), ts=10**15 + i, kind="login", user="u")
        for i in range(5)
    ]
    writer = CentralWriter(central)
    try:
        assert writer.host_cursor("h") == 0
        assert writer.forward("h", outbox_rows(events)).inserted == 5
        again = writer.forward("h", outbox_rows(events))
        assert (again.inserted, again.cursor) == (0, 5)
        assert writer.host_cursor("h") == 5
    finally:
        writer.close()
    assert open_store(central).events_stored() == 5


def test_a_row_refused_as_data_goes_to_the_dead_letters(central: str) -> None:
    from uptake.protocol import Event, content_event_id

    truncate_central(central)
    events = [
        Event(
            id=content_event_id(10**15 + i, b"y"),
            ts=10**15 + i,
            kind="feature",
            name="bad\x00name" if i == 3 else "ok",
            user="u",
        )
        for i in range(8)
    ]
    writer = CentralWriter(central)
    try:
        outcome = writer.forward("h", outbox_rows(events))
    finally:
        writer.close()
    assert outcome.cursor == 8
    assert outcome.inserted == 7
    assert [letter.seq for letter in outcome.dead_letters] == [4]


def test_redact_hides_passwords() -> None:
    assert "secret" not in redact("postgresql://u:secret@h/db?password=secret")


def test_migrating_from_version_1_builds_user_feature(pg_url: str) -> None:
    import psycopg

    from uptake_aggregator.store.postgres.schema import MIGRATIONS, SCHEMA_VERSION

    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "CREATE TABLE uptake_schema (version integer PRIMARY KEY, applied timestamptz)"
        )
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("INSERT INTO uptake_schema VALUES (1, now())")
        conn.cursor().executemany(
            'INSERT INTO events (id, ts, kind, name, "user", account, host_id, seq)'
            " VALUES (%s, %s, 'feature', %s, %s, %s, 'h', %s)",
            [
                (b"a" * 16, 300, "export", "u1", "a1", 1),
                (b"b" * 16, 200, "export", "u1", "", 2),
                (b"c" * 16, 100, "export", "", "a1", 3),
            ],
        )
    assert migrate(pg_url) == (1, SCHEMA_VERSION)
    assert migrate(pg_url) == (SCHEMA_VERSION, SCHEMA_VERSION)  # idempotent
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            'SELECT account, "user", feature, first_ts, last_day FROM user_feature ORDER BY 1'
        ).fetchall()
    assert rows == [("", "u1", "export", 200, 0), ("a1", "u1", "export", 300, 0)]


def test_migrating_from_version_3_folds_its_queue_once(pg_url: str, tmp_path: Path) -> None:
    """A version 3 centre with events still queued: the migration folds them, and the
    host forwarding on after it is counted from its cursor, not again from the start."""
    import psycopg

    from uptake_aggregator.store.postgres.schema import MIGRATIONS, SCHEMA_VERSION

    events = make_events(600, start=_T0, users=5)
    earlier = outbox_rows(events[:400])
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "CREATE TABLE uptake_schema (version integer PRIMARY KEY, applied timestamptz)"
        )
        for version, statements in enumerate(MIGRATIONS[:3], start=1):
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO uptake_schema VALUES (%s, now())", (version,))
        # What version 3's chunks left: the events, the host's cursor, the rows queued.
        conn.cursor().executemany(
            'INSERT INTO events (seq, id, ts, kind, name, "user", account, session, value,'
            " props, source, host_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'h')",
            earlier,
        )
        conn.execute("INSERT INTO hosts (host_id, cursor, events) VALUES ('h', 400, 400)")
        conn.execute(
            "INSERT INTO rollup_queue SELECT id, ts, (ts / 86400000000)::integer, kind, name,"
            " nullif(\"user\", ''), nullif(account, ''), nullif(session, ''), value,"
            " props->>'integration' FROM events"
        )
    assert migrate(pg_url) == (3, SCHEMA_VERSION)
    writer = CentralWriter(pg_url)
    try:
        assert writer.forward("h", outbox_rows(events[400:], start=401)).inserted == 200
    finally:
        writer.close()
    today = dt.datetime.fromtimestamp(_T0 / 1e6, dt.UTC).date() + dt.timedelta(days=1)
    local = tmp_path / "local.db"
    ingest_batches(local, [events])
    assert open_store(pg_url).events_stored() == 600
    assert build_report(pg_url, ReportFilters(), today=today) == build_report(
        local, ReportFilters(), today=today
    )


def test_the_alert_log_records_each_change_once(central: str) -> None:
    from uptake_aggregator.store.alerts import GoalReading

    truncate_central(central)
    log = open_store(central).alert_log()
    reading = GoalReading("utilization", "a1", "critical", 0.2)
    first = log.record(10, [reading], lambda before, after: True)
    again = log.record(20, [reading], lambda before, after: True)
    assert [(c.before, c.after) for c in first] == [(None, "critical")]
    assert again == []
    assert log.changes() == first
    assert log.changes(since_us=11) == []


def _unfolded_events(url: str) -> int:
    """Stored events not yet in the rollups: between each host's fold mark and cursor."""
    import psycopg

    with psycopg.connect(url) as conn:
        [(events,)] = conn.execute(
            "SELECT count(*) FROM events AS e JOIN hosts AS h USING (host_id)"
            " LEFT JOIN folds AS f USING (host_id) WHERE e.seq > coalesce(f.folded, 0)"
        )
    return int(events)


def test_folds_in_parallel_count_each_event_once(central: str, tmp_path: Path) -> None:
    """Two hosts forward overlapping events; their forwarders and a report fold them
    into the rollups at the same time, in pieces of different sizes: the report equals SQLite's."""
    truncate_central(central)
    events = make_events(3000, start=_T0, users=9)
    shares = [events[:2000], events[1000:]]  # 1000 events reach both hosts
    writers = [CentralWriter(central), CentralWriter(central)]
    try:
        for host, (writer, share) in enumerate(zip(writers, shares, strict=True)):
            chunk = outbox_rows(share)
            for start in range(0, len(chunk), 500):
                writer.forward(f"host{host}", chunk[start : start + 500])
        assert _unfolded_events(central) == len(events)  # each event stored once

        def fold_all(writer: CentralWriter, limit: int) -> None:
            while writer.fold(limit)[1]:
                pass

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            folds = [
                pool.submit(fold_all, writer, limit)
                for writer, limit in zip(writers, (37, 211), strict=True)
            ]
            today = dt.datetime.fromtimestamp(_T0 / 1e6, dt.UTC).date() + dt.timedelta(days=1)
            reading = pool.submit(build_report, central, ReportFilters(), today=today)
            for fold in folds:
                fold.result()
            central_report = reading.result()
    finally:
        for writer in writers:
            writer.close()
    assert _unfolded_events(central) == 0
    local = tmp_path / "union.db"
    ingest_batches(local, [events])
    assert central_report == build_report(local, ReportFilters(), today=today)
    assert build_report(central, ReportFilters(), today=today) == central_report


def test_a_report_folds_what_is_stored_and_counts_only_what_it_folded(central: str) -> None:
    truncate_central(central)
    writer = CentralWriter(central)
    try:
        writer.forward("h", outbox_rows(make_events(400, start=_T0)))
    finally:
        writer.close()
    assert _unfolded_events(central) == 400
    source = open_store(central).report_source()
    try:
        assert source.events_stored() == 400
    finally:
        source.close()
    assert _unfolded_events(central) == 0
