"""Forward migrations: a database written by an older schema reads the same after upgrade."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.aggregator.metrics.conftest import ingest_batches
from tests.aggregator.metrics.test_medium_datasets import FILTERS, TODAY, medium_dataset
from uptake_aggregator.errors import StorageError
from uptake_aggregator.metrics import build_report
from uptake_aggregator.schema import MIGRATIONS, SCHEMA_VERSION
from uptake_aggregator.storage import connect_readonly


def _indexes(path: Path) -> set[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return set(
            conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            )
        )


def _downgrade_to_v1(path: Path) -> None:
    """Rewrite a current database's indexes as schema version 1 created them."""
    v1_indexes = [sql for sql in MIGRATIONS[0] if sql.startswith("CREATE INDEX")]
    with sqlite3.connect(path) as conn:
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        ).fetchall():
            conn.execute(f"DROP INDEX {name}")
        for sql in v1_indexes:
            conn.execute(sql)
        conn.execute("DELETE FROM schema_version WHERE version > 1")


def test_a_version_1_database_migrates_and_reports_the_same(tmp_path: Path) -> None:
    assert SCHEMA_VERSION == 2
    current, old = tmp_path / "current.db", tmp_path / "old.db"
    events = medium_dataset(11)
    ingest_batches(current, [events])
    ingest_batches(old, [events])
    expected_indexes = _indexes(current)
    _downgrade_to_v1(old)
    assert _indexes(old) != expected_indexes

    with pytest.raises(StorageError, match="start the daemon once to migrate it"):
        connect_readonly(old)
    ingest_batches(old, [])  # what the daemon does when it starts: open and migrate

    assert _indexes(old) == expected_indexes
    for filters in FILTERS:
        assert build_report(old, filters, today=TODAY) == build_report(
            current, filters, today=TODAY
        )
