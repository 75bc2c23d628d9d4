"""``SqliteAlertLog``: goal status changes in the ``goal_changes`` table of the database.

The table is created on first use (``CREATE TABLE IF NOT EXISTS``), outside the event
schema's migrations: it holds no event data and no report reads it. Writes take the
database's write lock (``BEGIN IMMEDIATE``) for the few rows of one evaluation; the
last recorded status of each (goal, subject) is read inside that same transaction, so
two recorders (the daemon and `usage check --record`) cannot both record a change.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from uptake_aggregator.errors import StorageError
from uptake_aggregator.store.alerts import GoalReading, IsChange, StatusChange

__all__ = ["SqliteAlertLog"]

_CREATE: Final = (
    """CREATE TABLE IF NOT EXISTS goal_changes (
        id INTEGER PRIMARY KEY,
        ts INTEGER NOT NULL,
        goal TEXT NOT NULL,
        subject TEXT NOT NULL,
        from_status TEXT,
        to_status TEXT NOT NULL,
        value REAL
    )""",
    "CREATE INDEX IF NOT EXISTS goal_changes_by_subject ON goal_changes (goal, subject, id)",
    "CREATE INDEX IF NOT EXISTS goal_changes_by_ts ON goal_changes (ts)",
)
_LAST: Final = (
    "SELECT to_status FROM goal_changes WHERE goal = ? AND subject = ? ORDER BY id DESC LIMIT 1"
)
_INSERT: Final = (
    "INSERT INTO goal_changes (ts, goal, subject, from_status, to_status, value) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


class SqliteAlertLog:
    """The alert log of the SQLite database at ``path`` (which must exist)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self, *, readonly: bool) -> sqlite3.Connection:
        if not self.path.exists():
            raise StorageError(
                f"no database at {self.path}: start the daemon (`usage daemon start`) "
                "or load events (`usage import FILE`), or pass --db PATH"
            )
        try:
            if readonly:
                return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            conn = sqlite3.connect(self.path, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=10000")
            return conn
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the database at {self.path}: {exc}") from None

    def record(
        self, ts_us: int, readings: Sequence[GoalReading], is_change: IsChange
    ) -> list[StatusChange]:
        """See ``AlertLog.record``."""
        conn = self._connect(readonly=False)
        try:
            for statement in _CREATE:
                conn.execute(statement)
            conn.execute("BEGIN IMMEDIATE")
            try:
                changes = []
                for reading in readings:
                    row = conn.execute(_LAST, (reading.goal, reading.subject)).fetchone()
                    before = None if row is None else str(row[0])
                    if before == reading.status or not is_change(before, reading.status):
                        continue
                    change = StatusChange(
                        ts_us, reading.goal, reading.subject, before, reading.status, reading.value
                    )
                    conn.execute(
                        _INSERT,
                        (ts_us, change.goal, change.subject, before, change.after, change.value),
                    )
                    changes.append(change)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return changes
        except sqlite3.Error as exc:
            raise StorageError(f"cannot record goal changes in {self.path}: {exc}") from None
        finally:
            conn.close()

    def changes(self, since_us: int | None = None) -> list[StatusChange]:
        """See ``AlertLog.changes``; empty while no change was ever recorded."""
        conn = self._connect(readonly=True)
        try:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'goal_changes'"
            ).fetchone()
            if found is None:
                return []
            rows = conn.execute(
                "SELECT ts, goal, subject, from_status, to_status, value FROM goal_changes "
                "WHERE ts >= ? ORDER BY id",
                (since_us if since_us is not None else -(2**63),),
            ).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read goal changes from {self.path}: {exc}") from None
        finally:
            conn.close()
        return [StatusChange(*row) for row in rows]
