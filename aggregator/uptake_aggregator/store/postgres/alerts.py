"""``PostgresAlertLog``: goal status changes in the central ``goal_changes`` table.

The table is part of the central schema (version 2). A recording is one transaction
holding an advisory lock, and reads each (goal, subject)'s last status inside it, so two
recorders (say `usage check --record --store URL` from two hosts' cron jobs) cannot both
record, and announce, the same change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from uptake_aggregator.store.alerts import GoalReading, IsChange, StatusChange
from uptake_aggregator.store.postgres.connection import check_version, connect, server_error

__all__ = ["PostgresAlertLog"]

_LAST: Final = (
    "SELECT to_status FROM goal_changes WHERE goal = %s AND subject = %s ORDER BY id DESC LIMIT 1"
)
_INSERT: Final = (
    "INSERT INTO goal_changes (ts, goal, subject, from_status, to_status, value)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
)


class PostgresAlertLog:
    """The alert log of the central store at ``url``."""

    def __init__(self, url: str) -> None:
        self.url = url

    def record(
        self, ts_us: int, readings: Sequence[GoalReading], is_change: IsChange
    ) -> list[StatusChange]:
        """See ``AlertLog.record``."""
        import psycopg

        # Autocommit, so that ``transaction()`` is the transaction (not a savepoint).
        conn = connect(self.url, autocommit=True)
        try:
            check_version(self.url, conn)
            changes: list[StatusChange] = []
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('uptake_goal_changes'))")
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
            return changes
        except psycopg.Error as exc:
            raise server_error(self.url, exc) from None
        finally:
            conn.close()

    def changes(self, since_us: int | None = None) -> list[StatusChange]:
        """See ``AlertLog.changes``."""
        import psycopg

        conn = connect(self.url, autocommit=True)
        try:
            check_version(self.url, conn)
            rows = conn.execute(
                "SELECT ts, goal, subject, from_status, to_status, value FROM goal_changes"
                " WHERE ts >= %s ORDER BY id",
                (since_us if since_us is not None else -(2**63),),
            ).fetchall()
        except psycopg.Error as exc:
            raise server_error(self.url, exc) from None
        finally:
            conn.close()
        return [StatusChange(*row) for row in rows]
