"""Read-only access to an uptake database, for reports and inspection.

Kept apart from ``storage`` (the writer, which needs anyio) so that a report imports only
sqlite3 and the schema version.

Example::

    conn = connect_readonly(Path("uptake.db"))
    conn.execute("SELECT value FROM counters WHERE name = 'events'").fetchone()
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from uptake_aggregator.errors import StorageError
from uptake_aggregator.store.sqlite.schema import SCHEMA_VERSION

__all__ = ["connect_readonly", "db_bytes", "events_stored"]


def db_bytes(path: Path) -> int:
    """Bytes the database uses on disk, its WAL and shared-memory files included."""
    companions = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    return sum(candidate.stat().st_size for candidate in companions if candidate.exists())


def events_stored(conn: sqlite3.Connection) -> int:
    """Distinct events stored, from the running counter kept at ingest (no table scan).

    Inside a read transaction it also marks the committed state being read: every commit
    that stores an event changes it.
    """
    row = conn.execute("SELECT value FROM counters WHERE name = 'events'").fetchone()
    return int(row[0]) if row else 0


def connect_readonly(path: Path) -> sqlite3.Connection:
    """Open the database read-only for reports; raise ``StorageError`` if it is missing.

    Safe while the daemon writes: WAL lets readers see the last committed state.
    """
    if not path.exists():
        raise StorageError(
            f"no database at {path}: start the daemon (`usage daemon start`) "
            "or load events (`usage import FILE`), or pass --db PATH"
        )
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        version = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read the database at {path}: {exc}") from None
    if version != SCHEMA_VERSION:
        conn.close()
        raise StorageError(
            f"database {path} has schema version {version}, this uptake reads version "
            f"{SCHEMA_VERSION}: start the daemon once to migrate it, or upgrade uptake"
        )
    return conn
