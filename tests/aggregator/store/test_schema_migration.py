"""Forward migrations: a database written by an older schema reads the same after upgrade."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.aggregator.metrics.conftest import ingest_batches
from tests.aggregator.metrics.test_medium_datasets import FILTERS, TODAY, medium_dataset
from uptake_aggregator.errors import StorageError
from uptake_aggregator.metrics import build_report
from uptake_aggregator.store.sqlite.outbox import EVENT_COLUMNS
from uptake_aggregator.store.sqlite.schema import MIGRATIONS, SCHEMA_VERSION
from uptake_aggregator.store.sqlite.storage import connect_readonly


def _indexes(path: Path) -> set[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return set(
            conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            )
        )


def _write_version_1(current: Path, old: Path) -> None:
    """Write at ``old`` a schema version 1 database holding what ``current`` holds.

    The tables are created by the version 1 statements themselves; every row is copied,
    ``user_feature`` with its feature names (version 1 keyed it by name).
    """
    with sqlite3.connect(old) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (1)")
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("DELETE FROM counters")
        conn.execute("ATTACH DATABASE ? AS current", (str(current),))
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM main.sqlite_master WHERE type = 'table'"
                " AND name != 'schema_version'"
            ).fetchall()
        ]
        sources = {
            "user_feature": "current.user_feature_named",
            # Version 6 added the local sequence and the outbox counters.
            "events": f"(SELECT {EVENT_COLUMNS} FROM current.events)",
            "counters": "(SELECT * FROM current.counters WHERE name = 'events')",
        }
        for table in tables:
            source = sources.get(table, f"current.{table}")
            conn.execute(f"INSERT INTO main.{table} SELECT * FROM {source}")
        conn.commit()
        conn.execute("DETACH DATABASE current")


def test_a_version_1_database_migrates_and_reports_the_same(tmp_path: Path) -> None:
    current, old = tmp_path / "current.db", tmp_path / "old.db"
    events = medium_dataset(11)
    ingest_batches(current, [events])
    expected_indexes = _indexes(current)
    _write_version_1(current, old)
    assert _indexes(old) != expected_indexes

    with pytest.raises(StorageError, match="start the daemon once to migrate it"):
        connect_readonly(old)
    ingest_batches(old, [])  # what the daemon does when it starts: open and migrate

    assert _indexes(old) == expected_indexes
    with sqlite3.connect(old) as conn:
        named = conn.execute("SELECT * FROM user_feature_named ORDER BY 1, 2").fetchall()
    with sqlite3.connect(current) as conn:
        assert named == conn.execute("SELECT * FROM user_feature_named ORDER BY 1, 2").fetchall()
    assert named
    with sqlite3.connect(old) as conn:
        firsts = conn.execute("SELECT * FROM first_use ORDER BY 1, 2").fetchall()
    with sqlite3.connect(current) as conn:
        assert firsts == conn.execute("SELECT * FROM first_use ORDER BY 1, 2").fetchall()
    assert firsts
    for filters in FILTERS:
        assert build_report(old, filters, today=TODAY) == build_report(
            current, filters, today=TODAY
        )


def _step_creating(table: str) -> int:
    """The version a database has before the migration step that creates ``table``."""
    return next(
        version
        for version, statements in enumerate(MIGRATIONS)
        if any(f"CREATE TABLE {table} " in statement for statement in statements)
    )


def _rows(path: Path, tables: tuple[str, ...]) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(path) as conn:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            for table in tables
        }


def test_feature_day_users_and_user_span_are_filled_on_migration(tmp_path: Path) -> None:
    current, old = tmp_path / "current.db", tmp_path / "old.db"
    ingest_batches(current, [medium_dataset(12)])
    # The database as the step before these rollups left it: the same rows otherwise.
    step = _step_creating("feature_day_users")
    assert step == _step_creating("user_span")
    assert step < SCHEMA_VERSION
    old.write_bytes(current.read_bytes())
    with sqlite3.connect(old) as conn:
        conn.execute("DROP TRIGGER feature_day_new_user")
        conn.execute("DROP TABLE feature_day_users")
        conn.execute("DROP TABLE user_span")
        # The later step (the forwarding outbox) undone too: migrating replays it.
        assert _step_creating("meta") == step + 1 == SCHEMA_VERSION - 1
        conn.execute("DROP INDEX events_by_seq")
        conn.execute("ALTER TABLE events DROP COLUMN seq")
        conn.execute("DROP TABLE meta")
        conn.execute("DELETE FROM counters WHERE name IN ('seq', 'forwarded')")
        conn.execute("DELETE FROM schema_version WHERE version > ?", (step,))

    ingest_batches(old, [])  # the daemon's start: open and migrate

    tables = ("feature_day_users", "user_span")
    filled = _rows(old, tables)
    assert filled == _rows(current, tables)
    assert all(filled.values())
    # The trigger is back too: later events keep counting.
    extra = medium_dataset(13)
    ingest_batches(old, [extra])
    ingest_batches(current, [extra])
    assert _rows(old, tables) == _rows(current, tables)
    for filters in FILTERS:
        assert build_report(old, filters, today=TODAY) == build_report(
            current, filters, today=TODAY
        )
