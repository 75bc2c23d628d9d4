"""Group commit: one writer task stores the batches of every client, many per transaction.

Connections ``submit`` decoded batches and get a ``PendingBatch`` back; the writer task
takes everything queued (up to a round limit), calls ``EventWriter.ingest`` once for all of
it, and only then resolves each ``PendingBatch`` so its connection can send the ``Ack``.
While one transaction commits, the next round queues up, so under load each commit (and
its fsync) carries the batches of all clients.

The queue is bounded in events, not batches: a client that submits while it is full
waits (backpressure through its socket), so memory never grows with the number or the
speed of clients.

Example::

    writer = BatchWriter(storage)
    async with anyio.create_task_group() as tg:
        tg.start_soon(writer.run)
        pending = await writer.submit(events)
        await pending.wait()            # committed: pending.result is the IngestResult
        writer.close()                  # run() returns once the queue is drained
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Final

import anyio
import anyio.lowlevel

from uptake.protocol import Event
from uptake_aggregator.collector import collector_paused
from uptake_aggregator.errors import DaemonError
from uptake_aggregator.store.ingest import EventWriter, IngestResult

__all__ = ["DEFAULT_MAX_QUEUED_EVENTS", "DEFAULT_MAX_ROUND_EVENTS", "BatchWriter", "PendingBatch"]

#: Events that may wait for the writer before submitters are made to wait.
DEFAULT_MAX_QUEUED_EVENTS: Final = 200_000
#: Events stored per transaction at most (bounds commit latency and the size of a rollback).
DEFAULT_MAX_ROUND_EVENTS: Final = 50_000

#: How many times the writer yields between rounds while the queue still grows.
_GATHER_SPINS: Final = 64

_log = logging.getLogger("uptake_aggregator.daemon.writer")


class PendingBatch:
    """A submitted batch; ``wait()`` returns once it is committed or has failed."""

    __slots__ = ("_done", "error", "events", "result")

    def __init__(self, events: Sequence[Event]) -> None:
        self.events = events
        self.result: IngestResult | None = None
        #: Why the batch was not stored (the transaction failed); None when it was.
        self.error: str | None = None
        self._done = anyio.Event()

    async def wait(self) -> IngestResult:
        """Wait until the batch's transaction ended; raise ``DaemonError`` if it failed."""
        await self._done.wait()
        if self.result is None:
            raise DaemonError(self.error or "the batch was not stored")
        return self.result

    def _resolve(self, result: IngestResult | None, error: str | None = None) -> None:
        self.result = result
        self.error = error
        # Drop the events: connections may keep the PendingBatch until the Ack is sent.
        self.events = ()
        self._done.set()


class BatchWriter:
    """The single task that writes to the store; see the module docstring."""

    def __init__(
        self,
        storage: EventWriter,
        *,
        max_queued_events: int = DEFAULT_MAX_QUEUED_EVENTS,
        max_round_events: int = DEFAULT_MAX_ROUND_EVENTS,
    ) -> None:
        self._storage = storage
        self._max_queued = max_queued_events
        self._max_round = max_round_events
        self._queue: deque[PendingBatch] = deque()
        self._queued_events = 0
        self._work = anyio.Event()  # set when the queue is non-empty or on close
        self._space = anyio.Event()  # set when the queue shrinks
        self._closed = False
        self._idle = anyio.Event()  # set while no transaction runs
        self._idle.set()
        #: Totals since start, for status and logs.
        self.rounds = 0
        self.batches_committed = 0
        #: Seconds spent inside ``EventWriter.ingest`` (how busy the writer is).
        self.busy_seconds = 0.0

    @property
    def queued_events(self) -> int:
        """Events submitted and not yet handed to storage."""
        return self._queued_events

    async def submit(self, events: Sequence[Event]) -> PendingBatch:
        """Queue a batch for the next transaction, waiting while the queue is full.

        A batch larger than the whole budget is still taken once the queue is empty, so
        every legal frame can be stored. Raises ``DaemonError`` after ``close()``.
        """
        count = len(events)
        while self._queued_events and self._queued_events + count > self._max_queued:
            if self._closed:
                break
            if self._space.is_set():
                self._space = anyio.Event()
            await self._space.wait()
        if self._closed:
            raise DaemonError("the daemon is shutting down and takes no new batches")
        pending = PendingBatch(events)
        self._queue.append(pending)
        self._queued_events += count
        self._work.set()
        return pending

    async def wait_idle(self) -> None:
        """Wait until no transaction is writing rows (returns at once when none is).

        Why: SQLite releases the GIL for every row it inserts and must win it back; any
        Python work on the event loop meanwhile (decoding frames) takes it for up to the
        switch interval each time, making a transaction several times slower (measured
        6x). Connections therefore neither receive nor decode while rows are written;
        the bytes wait in the socket buffers. The ``COMMIT`` itself (writing and syncing
        the WAL) is one long call without the GIL, so connections decode during it, and
        the next round takes everything decoded meanwhile.
        """
        if not self._idle.is_set():
            await self._idle.wait()

    def close(self) -> None:
        """Take no new batches; ``run`` returns after storing what is queued."""
        self._closed = True
        self._work.set()
        self._space.set()

    async def run(self) -> None:
        """Store queued batches round after round until ``close()`` and the queue is empty."""
        while True:
            if not self._queue:
                if self._closed:
                    return
                self._work = anyio.Event()
                await self._work.wait()
                continue
            round_ = self._take_round()
            self._idle = anyio.Event()
            try:
                await self._commit(round_)
            finally:
                self._idle.set()
            await self._gather()

    async def _gather(self) -> None:
        # Let connections decode what arrived during the commit before the next round
        # starts, so that round carries all of it: yield to the event loop until the
        # queue stops growing (bounded, and at once when nobody is sending).
        for _ in range(_GATHER_SPINS):
            before = self._queued_events
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
            if self._queued_events == before or self._queued_events >= self._max_round:
                return

    def _take_round(self) -> list[PendingBatch]:
        queue = self._queue
        round_ = [queue.popleft()]
        events = len(round_[0].events)
        while queue and events + len(queue[0].events) <= self._max_round:
            pending = queue.popleft()
            events += len(pending.events)
            round_.append(pending)
        self._queued_events -= events
        self._space.set()
        return round_

    async def _commit(self, round_: list[PendingBatch]) -> None:
        # No cyclic garbage collection while a transaction runs: a round's rows and rollup
        # groups made every young collection re-walk them (~0.6 us/event of the daemon's
        # CPU). Connections only decode during the COMMIT itself (wait_idle); their events
        # are not tracked by the collector (Event is gc=False).
        try:
            # Shielded: once a transaction starts it runs to COMMIT/ROLLBACK and every
            # waiting connection learns its outcome, even during shutdown.
            started = time.perf_counter()
            with collector_paused(), anyio.CancelScope(shield=True):
                results = await self._storage.ingest(
                    [pending.events for pending in round_], written=self._idle.set
                )
            self.busy_seconds += time.perf_counter() - started
        except Exception as exc:
            _log.exception("storing %d batches failed; their clients will retry", len(round_))
            for pending in round_:
                pending._resolve(None, f"storing the batch failed ({exc}); retry later")
            return
        self.rounds += 1
        self.batches_committed += len(round_)
        for pending, result in zip(round_, results, strict=True):
            pending._resolve(result)
