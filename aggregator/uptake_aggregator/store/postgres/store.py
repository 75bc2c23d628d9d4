"""``PostgresStore``: the central store as a ``Store`` (reports, export, status).

Events reach the centre only through the forwarding daemons (``central.CentralWriter``):
a central store has no local single writer, so ``open_writer`` and the prune commands
refuse with a message saying what to do instead. Each use opens its own connection; a
report's forked child opens its own too (no connection crosses a fork).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, NoReturn

from uptake.protocol import Event
from uptake_aggregator.errors import StorageError
from uptake_aggregator.store.base import PruneOutcome, Synchronous
from uptake_aggregator.store.ingest import EventWriter
from uptake_aggregator.store.postgres.alerts import PostgresAlertLog
from uptake_aggregator.store.postgres.connection import check_version, connect, server_error
from uptake_aggregator.store.postgres.report_source import PostgresReportSource
from uptake_aggregator.store.postgres.rollups import behind, fold
from uptake_aggregator.store.postgres.urls import redact
from uptake_aggregator.store.rows import event_from_row

__all__ = ["PostgresStore"]

#: ``work_mem`` for a report's transaction (see ``report_source``).
_REPORT_WORK_MEM: Final = "256MB"
#: A host's sequences per transaction when a report folds a long backlog.
_READER_FOLD_ROWS: Final = 500_000


class PostgresStore:
    """The central PostgreSQL at ``url``; each use opens its own connection."""

    forks = True

    def __init__(self, url: str) -> None:
        self.url = url
        self.location = url

    def __repr__(self) -> str:
        return f"PostgresStore({redact(self.url)!r})"

    def prepare_process(self) -> None:
        """Nothing process-wide to set for PostgreSQL."""

    async def open_writer(self, *, synchronous: Synchronous = "FULL") -> EventWriter:
        """Refused: hosts write to the centre by forwarding (``usage daemon start --forward``)."""
        self._refuse(
            "events reach the central store from forwarding daemons",
            "run `usage daemon start --forward URL` on each host",
        )

    def _refuse(self, what: str, instead: str) -> NoReturn:
        raise StorageError(f"{what} ({redact(self.url)}): {instead}")

    def report_source(self) -> PostgresReportSource:
        """A connection inside one read-only repeatable-read transaction.

        Folds what the rollups lack first (its own transactions, the last waiting for the
        forwarders' folds in flight), so the rollups read hold every event committed
        before.
        """
        import psycopg

        conn = connect(self.url)
        try:
            check_version(self.url, conn)
            if behind(conn):
                conn.rollback()  # the check's snapshot; each fold takes its own
                # Pieces first (each a bounded transaction), then one that waits for
                # the forwarders' folds in flight and takes whatever is left.
                while fold(conn, limit=_READER_FOLD_ROWS)[1]:
                    pass
                fold(conn)
            conn.rollback()
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            check_version(self.url, conn)  # the first query opens the transaction
            # The implicit sessions sort every session-less event of the window at once
            # (~40 bytes each): in memory that sort is about twice as fast as spilled to
            # disk. Raised for this transaction only, never lowered.
            conn.execute(
                "SELECT set_config('work_mem', %s, true)"
                " WHERE pg_size_bytes(current_setting('work_mem')) < pg_size_bytes(%s)",
                (_REPORT_WORK_MEM, _REPORT_WORK_MEM),
            )
        except psycopg.Error as exc:
            conn.close()
            raise server_error(self.url, exc) from None
        except BaseException:
            conn.close()
            raise
        return PostgresReportSource(conn)

    def events_stored(self) -> int:
        """Events inserted by every host."""
        source = self.report_source()
        try:
            return source.events_stored()
        finally:
            source.close()

    def size_bytes(self) -> int:
        """The database's size on the server."""
        source = self.report_source()
        try:
            [(size,)] = source.conn.execute("SELECT pg_database_size(current_database())")
            return int(size)
        finally:
            source.close()

    def read_events(self, since_us: int | None, until_us: int | None) -> Iterator[Event]:
        """Stream the central events with ``since_us <= ts < until_us`` in id order."""
        import psycopg

        source = self.report_source()
        try:
            with source.conn.cursor(name="uptake_export") as cur:
                cur.execute(
                    'SELECT id, ts, kind, name, "user", account, session, value, props::text,'
                    " source FROM events WHERE ts >= %s AND ts < %s ORDER BY id",
                    (
                        since_us if since_us is not None else -(2**63),
                        until_us if until_us is not None else 2**63 - 1,
                    ),
                )
                for row in cur:
                    yield event_from_row(row)
        except psycopg.Error as exc:
            raise server_error(self.url, exc) from None
        finally:
            source.close()

    def alert_log(self) -> PostgresAlertLog:
        """The central alert log (``goal_changes``)."""
        return PostgresAlertLog(self.url)

    def plan_prune(self, cut_us: int, *, keep_unforwarded: bool = True) -> PruneOutcome:
        """Refused: the central store is not pruned by uptake."""
        self._refuse(
            "uptake does not prune the central store",
            "prune each host's database (`usage prune --db PATH`)",
        )

    def prune(self, cut_us: int, *, keep_unforwarded: bool = True) -> PruneOutcome:
        """Refused: the central store is not pruned by uptake."""
        self._refuse(
            "uptake does not prune the central store",
            "prune each host's database (`usage prune --db PATH`)",
        )

    def vacuum(self) -> int:
        """Refused: PostgreSQL's autovacuum looks after the central store."""
        self._refuse("PostgreSQL's autovacuum looks after the central store", "nothing to do")
