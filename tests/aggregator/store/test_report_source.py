"""The SQLite report source: users' accounts as of ``until``, with and without JSON functions."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from tests.aggregator.metrics.conftest import ingest_batches
from tests.aggregator.metrics.test_medium_datasets import BASE, medium_dataset
from uptake_aggregator.store.sqlite.readonly import connect_readonly
from uptake_aggregator.store.sqlite.report_source import SqliteReportSource


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
    source = SqliteReportSource(connect_readonly(db))
    try:
        conn = source.conn
        without_json = SqliteReportSource(connect_readonly(db))
        without_json.conn = _NoJson(without_json.conn)  # type: ignore[assignment]
        users = [user for (user,) in conn.execute("SELECT DISTINCT user FROM user_day")]
        for end in (BASE + 5, BASE + 20, BASE + 60):
            seeks = source._latest_accounts(users, end)
            grouped = without_json._latest_accounts(users, end)
            assert seeks == grouped
        assert seeks  # the dataset names accounts
    finally:
        source.close()


def test_known_users_and_active_day_counts_follow_user_day(tmp_path: Path) -> None:
    db = tmp_path / "medium.db"
    ingest_batches(db, [medium_dataset(7)])
    source = SqliteReportSource(connect_readonly(db))
    try:
        conn = source.conn
        # Ends before, inside and after the data: all, few and no users active later.
        for end in (BASE + 1, BASE + 5, BASE + 20, BASE + 39, BASE + 40, BASE + 60):
            expected = {
                user: (first_day, last_ts)
                for user, first_day, last_ts in conn.execute(
                    "SELECT user, min(day), (SELECT d.last_ts FROM user_day AS d"
                    " WHERE d.user = u.user AND d.day < ? ORDER BY d.day DESC LIMIT 1)"
                    " FROM user_day AS u WHERE day < ? GROUP BY user",
                    (end, end),
                )
            }
            known = source.known_users(end)
            assert {user: (info.first_day, info.last_ts) for user, info in known.items()} == (
                expected
            )
            assert list(known) == sorted(known)
            for population in (None, frozenset(list(expected)[::3])):
                source.restrict_to(population)
                days: dict[str, int] = {}
                for (user,) in conn.execute(
                    "SELECT user FROM user_day WHERE day >= ? AND day < ?", (end - 7, end)
                ):
                    if population is None or user in population:
                        days[user] = days.get(user, 0) + 1
                histogram: dict[int, int] = {}
                for count in days.values():
                    histogram[count] = histogram.get(count, 0) + 1
                assert source.active_day_counts(end - 7, end) == histogram
            source.restrict_to(None)
    finally:
        source.close()
