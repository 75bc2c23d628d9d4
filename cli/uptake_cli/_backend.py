"""Where the CLI's data comes from and goes to: the daemon when one answers, else the DB.

The one seam between the `usage` commands and the aggregator: reports are read through
the daemon (a ``Query`` frame) or computed from the database opened read-only; events
(seats, imports) are sent to the daemon (``Batch`` frames) or ingested with the same
``Storage`` code the daemon uses. Both ways give the same result.

Which way: the daemon on the socket is tried first, unless only ``--db`` was given (then
that database file is used directly, whatever daemon runs elsewhere). "Answers" means
the socket exists and accepts a connection; a daemon that answers with an error is an
error, never a silent fallback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from uptake_cli._present import Report

# The SDK package, the daemon client and anyio are imported where they are used: every
# `usage` command imports this module, and most never need them (start-up time).
if TYPE_CHECKING:
    from uptake.client import DaemonClient
    from uptake.protocol import Event, ReportFilters

__all__ = ["EventWriter", "Target", "build_local", "query_daemon", "resolve", "served_database"]

_CLIENT: Final = "usage-cli"
# A report over months of a big database can take a while; an Ack follows a commit.
_QUERY_TIMEOUT_S: Final = 300.0
_SEND_TIMEOUT_S: Final = 60.0


@dataclass(frozen=True)
class Target:
    """Where a command reads or writes: ``socket`` to try first (or None), then ``db``."""

    socket: Path | None
    db: Path


def resolve(db: Path | None, socket: Path | None) -> Target:
    """Decide where to go from the ``--db`` / ``--socket`` options (env included).

    >>> resolve(Path("/tmp/u.db"), None)
    Target(socket=None, db=PosixPath('/tmp/u.db'))
    """
    if db is not None and socket is None:
        return Target(socket=None, db=db)
    from uptake.paths import default_db_path, default_socket_path

    return Target(socket=socket or default_socket_path(), db=db or default_db_path())


def _daemon_may_answer(socket: Path | None) -> bool:
    return socket is not None and socket.exists()


def _connect(socket: Path | None, timeout: float) -> DaemonClient | None:
    """A connected client, or None when no daemon answers (never an error then)."""
    if not _daemon_may_answer(socket):
        return None
    from uptake.client import DaemonClient, DaemonUnavailableError

    client = DaemonClient(socket, timeout=timeout, client_name=_CLIENT)
    try:
        client.connect()
    except DaemonUnavailableError:
        client.close()  # a stale socket file: nobody listens
        return None
    except BaseException:
        client.close()
        raise
    return client


def query_daemon(socket: Path | None, filters: ReportFilters) -> Report | None:
    """Ask the daemon on ``socket`` for the usage report; None when no daemon answers."""
    client = _connect(socket, _QUERY_TIMEOUT_S)
    if client is None:
        return None
    with client:
        return client.query("usage", filters)


def served_database(target: Target) -> Path:
    """The database a command should write to: the answering daemon's, else ``target.db``.

    Through a daemon the report comes from the database it serves, which ``--db`` (or its
    default) may not name; asking the daemon keeps the two in step.
    """
    client = _connect(target.socket, _SEND_TIMEOUT_S)
    if client is None:
        return target.db
    with client:
        db = client.status().get("db")
    return Path(db) if isinstance(db, str) else target.db


def build_local(db: Path | str, filters: ReportFilters) -> Report:
    """Compute the report from the database at ``db`` (or a store URL), opened read-only.

    The CLI is single-threaded here, so part of the report may run in a forked child
    process on another core (``build_report(parallel=True)``).
    """
    from uptake_aggregator.metrics import build_report

    return build_report(db, filters, parallel=True)


class EventWriter:
    """Writes event batches to the daemon or, when none answers, straight into the database.

    Use as a context manager; ``via`` says which way was taken (for messages)::

        with EventWriter(resolve(db, socket)) as writer:
            [(accepted, duplicates)] = writer.write([[event]])
    """

    def __init__(self, target: Target) -> None:
        self._target = target
        self._stack = ExitStack()
        self._write: Callable[[Sequence[Sequence[Event]]], list[tuple[int, int]]] | None = None
        self.via = ""

    def __enter__(self) -> EventWriter:
        try:
            daemon = self._open_daemon()
            if daemon is not None:
                self._write, self.via = daemon, "daemon"
            else:
                self._write = self._open_storage(self._target.db)
                self.via = f"database {self._target.db}"
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def write(self, batches: Sequence[Sequence[Event]]) -> list[tuple[int, int]]:
        """Store ``batches``; return ``(accepted, duplicates)`` per batch once durable."""
        if self._write is None:
            raise RuntimeError("EventWriter used outside its `with` block")
        return self._write(batches)

    def _open_daemon(self) -> Callable[[Sequence[Sequence[Event]]], list[tuple[int, int]]] | None:
        client = _connect(self._target.socket, _SEND_TIMEOUT_S)
        if client is None:
            return None
        self._stack.callback(client.close)

        def write(batches: Sequence[Sequence[Event]]) -> list[tuple[int, int]]:
            acks = [client.send(batch) for batch in batches]
            return [(ack.accepted, ack.duplicates) for ack in acks]

        return write

    def _open_storage(
        self, db: Path
    ) -> Callable[[Sequence[Sequence[Event]]], list[tuple[int, int]]]:
        from anyio.from_thread import start_blocking_portal

        from uptake_aggregator.store import open_store

        # The store's writer is async; a blocking portal runs its event loop in a helper
        # thread so the database stays open across the many writes of an import.
        portal = self._stack.enter_context(start_blocking_portal())
        storage = portal.call(open_store(db).open_writer)
        self._stack.callback(portal.call, storage.close)

        def write(batches: Sequence[Sequence[Event]]) -> list[tuple[int, int]]:
            results = portal.call(storage.ingest, batches)
            return [(result.accepted, result.duplicates) for result in results]

        return write
