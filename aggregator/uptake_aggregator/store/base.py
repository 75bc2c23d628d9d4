"""``Store``: one uptake database, whatever its backend, as the daemon and the CLI see it.

``open_store(location)`` (in ``uptake_aggregator.store``) returns one; nothing outside
``store/`` constructs a backend's classes. A store is a light handle (it opens nothing
until asked), so it may be created in one process and used after a fork.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, Protocol

from uptake.protocol import Event
from uptake_aggregator.store.alerts import AlertLog
from uptake_aggregator.store.ingest import EventWriter
from uptake_aggregator.store.reports import ReportSource

__all__ = ["PruneOutcome", "Store", "Synchronous"]

#: How durable a commit is: ``FULL`` survives power loss, ``NORMAL`` a crash of the daemon.
Synchronous = Literal["FULL", "NORMAL"]


class PruneOutcome(Protocol):
    """What a prune removed (or would remove)."""

    @property
    def stored_before(self) -> int:
        """Events stored before the prune."""
        ...

    @property
    def removed(self) -> int:
        """Events deleted."""
        ...

    @property
    def kept(self) -> int:
        """Events left, anchors included."""
        ...

    @property
    def anchors(self) -> int:
        """Events before the cut kept so that later reports do not change."""
        ...

    @property
    def unforwarded(self) -> int:
        """Events before the cut that the central store does not have yet."""
        ...


class Store(Protocol):
    """One uptake database. Its read side is a ``ReportStore`` (``forks``, ``report_source``)."""

    #: Where the store lives, as given to ``open_store`` (a path or a URL).
    location: str
    #: True when a forked child may open its own snapshot (see ``ReportStore``).
    forks: bool

    def prepare_process(self) -> None:
        """Process-wide backend settings, before the process opens any connection."""
        ...

    async def open_writer(self, *, synchronous: Synchronous = "FULL") -> EventWriter:
        """Open (creating and migrating if needed) the store for writing."""
        ...

    def report_source(self) -> ReportSource:
        """Open a read snapshot of the committed state."""
        ...

    def events_stored(self) -> int:
        """Committed events, read without waiting behind a writer."""
        ...

    def size_bytes(self) -> int:
        """What the store takes on disk (0 when it cannot tell)."""
        ...

    def read_events(self, since_us: int | None, until_us: int | None) -> Iterator[Event]:
        """The stored events with ``since_us <= ts < until_us``, oldest first, streamed."""
        ...

    def plan_prune(self, cut_us: int, *, keep_unforwarded: bool = True) -> PruneOutcome:
        """What ``prune(cut_us)`` would do, changing nothing."""
        ...

    def prune(self, cut_us: int, *, keep_unforwarded: bool = True) -> PruneOutcome:
        """Delete events before the UTC day start ``cut_us``, keeping reports from it exact.

        Events not yet forwarded to a central store are kept unless ``keep_unforwarded``
        is False.
        """
        ...

    def vacuum(self) -> int:
        """Give the space of deleted data back; return the bytes used after."""
        ...

    def alert_log(self) -> AlertLog:
        """The history of goal status changes (``store.alerts``)."""
        ...
