"""The write side of a store: what the daemon's writer ingests through.

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

__all__ = ["EventWriter", "IngestResult"]


@dataclass(frozen=True)
class IngestResult:
    """What happened to one batch: new events stored and duplicates dropped."""

    accepted: int
    duplicates: int


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

    async def close(self) -> None:
        """Finish pending background work and close; the store stays consistent without it."""
        ...
