"""The forwarding side of a local database: its events in commit order (schema v7).

Each stored event has a local sequence number given when its transaction committed
(``events.seq``); the forwarder reads "the events after the cursor" as one range of the
``events_by_seq`` index, on a read-only connection of its own, so it never waits behind
the writer and the writer never waits behind it (WAL).

Example::

    outbox = SqliteOutbox(connect_readonly(Path("uptake.db")))
    rows = outbox.read_after(outbox_cursor, 5000)  # [(seq, id, ts, ...), ...], as stored
    outbox.close()
"""

from __future__ import annotations

import sqlite3
from typing import Final

from uptake_aggregator.store.rows import OutboxRow

__all__ = ["EVENT_COLUMNS", "SqliteOutbox"]

#: The ``events`` columns an ``Event`` is made of, in its field order.
EVENT_COLUMNS: Final = "id, ts, kind, name, user, account, session, value, props, source"


class SqliteOutbox:
    """Reads one database's events by local sequence; one connection, one thread at a time."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        row = conn.execute("SELECT value FROM meta WHERE name = 'host_id'").fetchone()
        #: The database's persistent name to a central store (random, created once).
        self.host_id: str = str(row[0])

    def read_after(self, seq: int, limit: int) -> list[OutboxRow]:
        """Up to ``limit`` committed events with a sequence above ``seq``, oldest first,
        as outbox rows (props as JSON text): what the forwarder sends, read at about
        half the cost of building ``Event`` objects."""
        rows: list[OutboxRow] = self._conn.execute(
            f"SELECT seq, {EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        ).fetchall()
        return rows

    def last_seq(self) -> int:
        """The sequence of the latest committed event (0 when none was ever stored)."""
        row = self._conn.execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
