"""The central PostgreSQL store's write path on a real server (tests/support/postgres.py)."""

from __future__ import annotations

import pytest

from tests.support.postgres import PostgresCluster
from uptake_aggregator.store import open_store
from uptake_aggregator.store.postgres.central import CentralWriter
from uptake_aggregator.store.postgres.connection import migrate
from uptake_aggregator.store.postgres.urls import redact


@pytest.fixture(scope="module")
def central(postgres: PostgresCluster) -> str:
    url = postgres.new_database()
    migrate(url)
    return url


def _reset(url: str) -> None:
    import psycopg

    with psycopg.connect(url) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename <> 'uptake_schema'"
            )
        ]
        conn.execute("TRUNCATE " + ", ".join(tables))


def test_forward_is_idempotent_per_host_cursor(central: str) -> None:
    from uptake.protocol import Event, content_event_id

    _reset(central)
    events = [
        Event(id=content_event_id(10**15 + i, b"x"), ts=10**15 + i, kind="login", user="u")
        for i in range(5)
    ]
    writer = CentralWriter(central)
    try:
        assert writer.host_cursor("h") == 0
        assert writer.forward("h", list(enumerate(events, start=1))).inserted == 5
        again = writer.forward("h", list(enumerate(events, start=1)))
        assert (again.inserted, again.cursor) == (0, 5)
        assert writer.host_cursor("h") == 5
    finally:
        writer.close()
    assert open_store(central).events_stored() == 5


def test_a_row_refused_as_data_goes_to_the_dead_letters(central: str) -> None:
    from uptake.protocol import Event, content_event_id

    _reset(central)
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
        outcome = writer.forward("h", list(enumerate(events, start=1)))
    finally:
        writer.close()
    assert outcome.cursor == 8
    assert outcome.inserted == 7
    assert [letter.seq for letter in outcome.dead_letters] == [4]


def test_redact_hides_passwords() -> None:
    assert "secret" not in redact("postgresql://u:secret@h/db?password=secret")
