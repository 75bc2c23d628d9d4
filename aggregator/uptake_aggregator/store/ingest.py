"""The write side of a store: what the daemon's writer ingests through, and forwards from.

A local store is also the outbox of forwarding to a central store (README, *Scale out*):
each committed event has a local sequence number, ``Outbox`` reads them in that order,
``ForwardTarget`` (``open_forward_target`` in ``uptake_aggregator.store``) applies them
to the centre, and the writer keeps the forward cursor.

Example::

    writer = await open_store(path).open_writer()
    [result] = await writer.ingest([events])
    await writer.close()
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from uptake.protocol import Event
from uptake_aggregator.store.rows import OutboxRow

__all__ = ["DeadLetter", "EventWriter", "ForwardResult", "ForwardTarget", "IngestResult", "Outbox"]


@dataclass(frozen=True)
class IngestResult:
    """What happened to one batch: new events stored and duplicates dropped."""

    accepted: int
    duplicates: int


class Outbox(Protocol):
    """A local store's committed events by local sequence, on a connection of its own.

    Used from one thread at a time (the forwarder's), never waiting behind the writer.
    """

    #: The store's persistent name to a central store (random, created once).
    host_id: str

    def read_after(self, seq: int, limit: int) -> list[OutboxRow]:
        """Up to ``limit`` committed events with a sequence above ``seq``, oldest first,
        as outbox rows (``rows.OutboxRow``: the sequence, then the events row)."""
        ...

    def last_seq(self) -> int:
        """The sequence of the latest committed event (0 when none was ever stored)."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


class DeadLetter(Protocol):
    """An event the centre refused as data, kept aside there (never retried)."""

    @property
    def seq(self) -> int:
        """Its local sequence."""
        ...

    @property
    def id(self) -> bytes:
        """Its event id."""
        ...

    @property
    def error(self) -> str:
        """Why the centre refused it (the server's message)."""
        ...


class ForwardResult(Protocol):
    """What one chunk did at the centre."""

    @property
    def cursor(self) -> int:
        """The host's central cursor after the chunk (its events up to it are applied)."""
        ...

    @property
    def inserted(self) -> int:
        """Events the centre did not hold yet."""
        ...

    @property
    def dead_letters(self) -> Sequence[DeadLetter]:
        """Events of the chunk the centre refused as data."""
        ...


class ForwardTarget(Protocol):
    """One connection to a central store, for one forwarding host (blocking calls).

    A failure raises ``StorageError`` with a password-free message; the next call
    reconnects.
    """

    def host_cursor(self, host_id: str) -> int:
        """The highest local sequence of ``host_id`` the centre holds."""
        ...

    def forward(self, host_id: str, chunk: Sequence[OutboxRow]) -> ForwardResult:
        """Apply a chunk of outbox rows, oldest first, in one central transaction.

        Returns after the COMMIT; events at or below the host's cursor change nothing.
        """
        ...

    def fold(self, limit: int) -> tuple[int, bool]:
        """Bring up to ``limit`` of the centre's stored events not yet in its rollups up
        to date; return how many, and whether more may wait that no other host is
        folding already."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


class EventWriter(Protocol):
    """The single writer of a store, open until ``close``.

    Calls are serialised by the writer itself; one writer per store at a time.
    """

    async def ingest(
        self,
        batches: Sequence[Sequence[Event]],
        *,
        written: Callable[[], None] | None = None,
    ) -> list[IngestResult]:
        """Store the batches in one transaction; return one result per batch, in order.

        Events whose id is already stored (or repeated inside the batches) count as
        duplicates and change nothing, so a resent batch is harmless. When this returns
        the batches are durable; if it raises, nothing of them is stored. ``written`` is
        called once every row is written and the commit begins, so the caller may run
        meanwhile.
        """
        ...

    async def events_stored(self) -> int:
        """Distinct events stored (a running counter, no scan)."""
        ...

    def last_seq(self) -> int:
        """The local sequence of the latest committed event (no I/O)."""
        ...

    def open_outbox(self) -> Outbox:
        """A reader of the committed events by local sequence, on its own connection."""
        ...

    def forward_cursor(self) -> int:
        """The forward cursor last noted (-1 while the store was never forwarded)."""
        ...

    def note_forwarded(self, seq: int) -> None:
        """Remember that the centre holds every event up to ``seq`` (callable from any thread).

        Stored with the next transaction or by ``save_forwarded``; a prune never deletes
        an event above the stored cursor once the store was forwarded.
        """
        ...

    async def save_forwarded(self) -> None:
        """Store the noted forward cursor now, if no transaction has carried it yet."""
        ...

    async def close(self) -> None:
        """Finish pending background work and close; the store stays consistent without it."""
        ...
