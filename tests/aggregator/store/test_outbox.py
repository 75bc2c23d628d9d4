"""The local side of forwarding (schema v7): sequences in commit order, the forward cursor."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio

from tests.aggregator.metrics.conftest import ingest_batches
from uptake.protocol import Event, new_event_id
from uptake_aggregator.store.rows import event_from_row
from uptake_aggregator.store.sqlite.outbox import EVENT_COLUMNS, SqliteOutbox
from uptake_aggregator.store.sqlite.prune import prune
from uptake_aggregator.store.sqlite.schema import MIGRATIONS
from uptake_aggregator.store.sqlite.storage import Storage, connect_readonly

DAY = 86_400_000_000
T0 = 1_750_032_000_000_000  # a UTC day start


def _events(count: int, ts: int = T0, user: str = "u1") -> list[Event]:
    return [
        Event(id=new_event_id(ts + i), ts=ts + i, kind="feature", name="f", user=user)
        for i in range(count)
    ]


def _outbox(db: Path) -> SqliteOutbox:
    return SqliteOutbox(connect_readonly(db))


def _counters(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT name, value FROM counters"))


def test_each_stored_event_gets_the_next_sequence_at_commit_and_duplicates_none(
    tmp_path: Path,
) -> None:
    db = tmp_path / "u.db"
    first, second = _events(3), _events(2, ts=T0 - DAY)  # older times, later commit

    async def run() -> None:
        storage = await Storage.open(db)
        try:
            await storage.ingest([first])
            [again, fresh] = await storage.ingest([first[1:], second])
            assert (again.accepted, again.duplicates, fresh.accepted) == (0, 2, 2)
        finally:
            await storage.close()

    anyio.run(run)
    outbox = _outbox(db)
    try:
        chunk = outbox.read_after(0, 100)
        assert [row[0] for row in chunk] == [1, 2, 3, 4, 5]
        assert [event_from_row(row[1:]) for row in chunk] == first + second
        assert [(row[0], event_from_row(row[1:])) for row in outbox.read_after(3, 1)] == [
            (4, second[0])
        ]
        assert outbox.last_seq() == 5
        host = outbox.host_id
    finally:
        outbox.close()
    ingest_batches(db, [_events(1)])  # reopened: numbering goes on, the host id stays
    outbox = _outbox(db)
    try:
        assert [row[0] for row in outbox.read_after(5, 10)] == [6]
        assert outbox.host_id == host and len(host) == 32
    finally:
        outbox.close()
    assert _outbox_host(tmp_path / "other.db") != host


def _outbox_host(db: Path) -> str:
    ingest_batches(db, [])
    outbox = _outbox(db)
    try:
        return outbox.host_id
    finally:
        outbox.close()


def test_the_forward_cursor_rides_on_the_next_transaction_or_is_saved_on_its_own(
    tmp_path: Path,
) -> None:
    db = tmp_path / "u.db"

    async def run() -> None:
        storage = await Storage.open(db)
        try:
            assert storage.forward_cursor() == -1
            await storage.ingest([_events(4)])
            storage.note_forwarded(2)
            assert _counters(db)["forwarded"] == -1  # noted only
            await storage.ingest([_events(1)])
            assert _counters(db)["forwarded"] == 2
            storage.note_forwarded(5)
            storage.note_forwarded(3)  # a cursor never moves back
            await storage.save_forwarded()
            assert _counters(db)["forwarded"] == 5
            storage.note_forwarded(5)
        finally:
            await storage.close()

    anyio.run(run)
    assert _counters(db)["forwarded"] == 5
    assert _counters(db)["seq"] == 5


def _pruned_seqs(db: Path, forwarded: int | None, keep_unforwarded: bool = True) -> set[int]:
    """Store six hourly logins of one user, then two days later two more; prune between."""
    old = [
        Event(id=new_event_id(ts), ts=ts, kind="login", user="u1")
        for ts in range(T0, T0 + 6 * 3_600_000_000, 3_600_000_000)
    ]

    async def run() -> None:
        storage = await Storage.open(db)
        try:
            await storage.ingest([old[:3]])
            if forwarded is not None:
                storage.note_forwarded(forwarded)
            await storage.ingest([old[3:], _events(2, ts=T0 + 5 * DAY)])
        finally:
            await storage.close()

    anyio.run(run)
    result = prune(db, T0 + 2 * DAY, keep_unforwarded=keep_unforwarded)
    with sqlite3.connect(db) as conn:
        kept = {row[0] for row in conn.execute("SELECT seq FROM events")}
    assert result.kept == len(kept)
    return kept


def test_a_prune_keeps_the_events_not_yet_forwarded(tmp_path: Path) -> None:
    # Never forwarded: the old logins go but the user's latest (an anchor).
    assert _pruned_seqs(tmp_path / "local.db", None) == {6, 7, 8}
    # Forwarded up to 3: the old logins 4 and 5 exist nowhere else yet, they stay.
    assert _pruned_seqs(tmp_path / "outbox.db", 3) == {4, 5, 6, 7, 8}
    # Forwarding given up for good: they go like any old event.
    assert _pruned_seqs(tmp_path / "gave-up.db", 3, keep_unforwarded=False) == {6, 7, 8}


def _write_version_5(current: Path, old: Path) -> None:
    """Write at ``old`` a schema version 5 database holding the events ``current`` holds."""
    with sqlite3.connect(old) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for version, statements in enumerate(MIGRATIONS[:5], start=1):
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (?)", (version,))
        conn.execute("ATTACH DATABASE ? AS current", (str(current),))
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM main.sqlite_master WHERE type = 'table'"
                " AND name NOT IN ('schema_version', 'counters')"
            )
        ]
        for table in tables:
            columns = EVENT_COLUMNS if table == "events" else "*"
            conn.execute(f"DELETE FROM main.{table}")
            conn.execute(f"INSERT INTO main.{table} SELECT {columns} FROM current.{table}")
        conn.execute(
            "UPDATE main.counters SET value = (SELECT value FROM current.counters"
            " WHERE name = 'events') WHERE name = 'events'"
        )
        conn.commit()


def test_a_version_5_database_numbers_its_events_in_id_order(tmp_path: Path) -> None:
    current, old = tmp_path / "current.db", tmp_path / "old.db"
    events = _events(5)
    ingest_batches(current, [events[3:], events[:3]])  # committed out of id order
    _write_version_5(current, old)

    ingest_batches(old, [_events(1, ts=T0 + DAY)])  # what the daemon does: open, migrate

    outbox = _outbox(old)
    try:
        chunk = outbox.read_after(0, 100)
        assert [row[1] for row in chunk[:5]] == sorted(event.id for event in events)
        assert [row[0] for row in chunk] == [1, 2, 3, 4, 5, 6]
    finally:
        outbox.close()
    counters = _counters(old)
    assert (counters["events"], counters["seq"], counters["forwarded"]) == (6, 6, -1)
