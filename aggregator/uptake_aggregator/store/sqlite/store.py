"""``SqliteStore``: the ``Store`` of one SQLite database file (see ``store.base``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from uptake.protocol import Event
from uptake_aggregator.store.alerts import AlertLog
from uptake_aggregator.store.base import PruneOutcome, Synchronous
from uptake_aggregator.store.ingest import EventWriter
from uptake_aggregator.store.sqlite.readonly import connect_readonly, db_bytes, events_stored
from uptake_aggregator.store.sqlite.report_source import SqliteReportSource

__all__ = ["SqliteStore"]


class SqliteStore:
    """An uptake database file; each use opens its own connection.

    Forking is safe: the store holds no connection, and a report's forked child opens its
    own (SQLite forbids using a connection across a fork).
    """

    forks = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)

    def __repr__(self) -> str:
        return f"SqliteStore({self.location!r})"

    def prepare_process(self) -> None:
        """Stop SQLite counting allocations (see ``sqlite_tuning``)."""
        from uptake_aggregator.store.sqlite.sqlite_tuning import disable_memstatus

        disable_memstatus()

    async def open_writer(self, *, synchronous: Synchronous = "FULL") -> EventWriter:
        """The single writer (``storage.Storage``), the file created and migrated."""
        from uptake_aggregator.store.sqlite.storage import Storage

        return await Storage.open(self.path, synchronous=synchronous)

    def report_source(self) -> SqliteReportSource:
        """A read-only connection inside one read transaction."""
        return SqliteReportSource(connect_readonly(self.path))

    def events_stored(self) -> int:
        """The running counter, on a read-only connection of its own."""
        conn = connect_readonly(self.path)
        try:
            return events_stored(conn)
        finally:
            conn.close()

    def size_bytes(self) -> int:
        """The file with its WAL and shared-memory companions."""
        return db_bytes(self.path)

    def read_events(self, since_us: int | None, until_us: int | None) -> Iterator[Event]:
        """Stream the events (``storage.read_events``) on a read-only connection."""
        from uptake_aggregator.store.sqlite.storage import read_events

        conn = connect_readonly(self.path)
        try:
            yield from read_events(conn, since_us, until_us)
        finally:
            conn.close()

    def plan_prune(self, cut_us: int, *, keep_unforwarded: bool = True) -> PruneOutcome:
        """See ``prune.plan_prune``."""
        from uptake_aggregator.store.sqlite.prune import plan_prune

        return plan_prune(self.path, cut_us, keep_unforwarded=keep_unforwarded)

    def prune(self, cut_us: int, *, keep_unforwarded: bool = True) -> PruneOutcome:
        """See ``prune.prune``."""
        from uptake_aggregator.store.sqlite.prune import prune

        return prune(self.path, cut_us, keep_unforwarded=keep_unforwarded)

    def vacuum(self) -> int:
        """See ``prune.vacuum_db``."""
        from uptake_aggregator.store.sqlite.prune import vacuum_db

        return vacuum_db(self.path)

    def alert_log(self) -> AlertLog:
        """The ``goal_changes`` table (``sqlite.alerts``), created on first write."""
        from uptake_aggregator.store.sqlite.alerts import SqliteAlertLog

        return SqliteAlertLog(self.path)
