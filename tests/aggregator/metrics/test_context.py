"""The report context: users' accounts as of ``until``, with and without JSON functions."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from tests.aggregator.metrics.conftest import ingest_batches
from tests.aggregator.metrics.test_medium_datasets import BASE, medium_dataset
from uptake_aggregator.metrics import context
from uptake_aggregator.store.sqlite.readonly import connect_readonly


class _NoJson:
    """A connection whose SQLite lacks the JSON functions (older builds)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if "json_each" in sql:
            raise sqlite3.OperationalError("no such table: json_each")
        return self._conn.execute(sql, *args)


def test_latest_accounts_are_the_same_with_and_without_json(tmp_path: Path) -> None:
    db = tmp_path / "medium.db"
    ingest_batches(db, [medium_dataset(6)])
    conn = connect_readonly(db)
    try:
        users = [user for (user,) in conn.execute("SELECT DISTINCT user FROM user_day")]
        for end in (BASE + 5, BASE + 20, BASE + 60):
            seeks = context._latest_accounts(conn, users, end)
            grouped = context._latest_accounts(_NoJson(conn), users, end)  # type: ignore[arg-type]
            assert seeks == grouped
        assert seeks  # the dataset names accounts
    finally:
        conn.close()
