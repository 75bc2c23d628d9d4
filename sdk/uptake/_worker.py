"""Where buffered calls go: the background thread, and the two ways of delivering events.

One worker thread per client and process wakes every ``flush_interval``, when the buffer
crosses ``max_batch``, or on ``flush()``/``shutdown()``. Each cycle it pops the buffer in
chunks of ``max_batch``, builds and validates events (``_build``), and hands them to a
delivery; while the daemon lags, it builds ahead and stages the encoded batches (see
``drain``), which count against ``max_queue`` with the buffered calls:

* ``SinkDelivery`` gives the ``Event`` structs to an in-memory sink (tests, benchmarks);
* ``DaemonDelivery`` sends ``Batch`` frames to the daemon and waits for the ``Ack``s.

``DaemonDelivery`` keeps order and loses nothing it was given: a batch that cannot be
sent (daemon down, stalled past the timeout, connection closed mid-batch) goes to the
on-disk spool, or with ``spool=False`` to a bounded in-memory retry queue. While the spool
holds this process's records, new batches are spooled behind them, and on the next
successful connection the spool is replayed, oldest first, before anything new is sent.
Orphaned spool files of dead processes are replayed too (checked on each new connection
and every 30 s). Reconnects wait for ``Backoff``; ``flush()`` and ``shutdown()`` may try
once right away. If the daemon answers a batch with ``Error`` (an event it refuses), the
batches in flight are resent one at a time and a refused batch is split in halves until
the refused event is isolated and rejected; the others are stored.

Nothing here ever raises into the host app: the thread logs an unexpected exception once
and carries on.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import zlib
from collections import deque
from typing import TYPE_CHECKING, Any, Final, Protocol

from uptake._build import Built, EncodedEvents, build_events, pack_array
from uptake._config import Config
from uptake._model import Event
from uptake._spool import Spool
from uptake._stats import Counters, log_once
from uptake._transport import (
    Backoff,
    Connection,
    DaemonError,
    RefusedError,
    connect,
    encode_batch_payload,
)

if TYPE_CHECKING:
    from uptake._client import Client

__all__ = ["DaemonDelivery", "Delivery", "EventSink", "SinkDelivery", "make_delivery", "run"]

_CONNECT_TIMEOUT: Final = 2.0
#: Batches sent and not yet acknowledged. The daemon acknowledges after each commit and
#: commits what all clients have queued at once, so a commit carries about half of all
#: clients' windows, and rollup pages are rewritten once per commit whatever the number
#: of events in it. With 4 clients: 8 (not 4) halved commits per event (ingest ~+20%);
#: 16 and then 32 made commits ~1.5x larger each time (~25k, then ~40k events), each
#: step ~8% less daemon CPU per event in paired runs.
_WINDOW: Final = 32
#: ... and at most this many payload bytes unacknowledged (what a resend may need), so
#: the window stays a few MiB however large the events are.
_WINDOW_BYTES: Final = 8 * 1024 * 1024
_ORPHAN_SCAN_INTERVAL: Final = 30.0
_MAX_BATCH_BYTES: Final = 4 * 1024 * 1024
WORKER_NAME: Final = "uptake-worker"


class EventSink(Protocol):
    """Receives validated events instead of the daemon (see ``uptake.testing``)."""

    def write(self, events: list[Event]) -> None:
        """Take one batch of events; called from the worker (or caller, in sync mode)."""


class Delivery(Protocol):
    """What the worker hands built batches to."""

    #: Events built and staged, not yet sent nor kept (they count as queued).
    staged: int

    def deliver(self, built: Built, deadline: float) -> None:
        """Send or keep one batch; never raises for delivery problems."""

    def stage(self, built: Built) -> None:
        """Take one batch to send later, in order (or deliver it right away)."""

    def send_staged(self, deadline: float) -> bool:
        """Send or keep the oldest staged batch; False if none was staged."""

    def maintain(self, deadline: float, force: bool) -> None:
        """Replay backlog if possible and wait for outstanding acknowledgements."""

    def idle_timeout(self, flush_interval: float) -> float:
        """How long the worker may sleep before ``maintain`` has work again."""

    def has_backlog(self) -> bool:
        """True when earlier batches wait to be replayed."""

    def volatile_backlog(self) -> int:
        """Events kept only in memory for a retry (spool disabled): lost if the process ends."""

    def close(self) -> None:
        """Release sockets and files (the spool stays on disk)."""

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's sockets and files without using them."""


class SinkDelivery:
    """Deliver to an ``EventSink``; counts every event as sent."""

    def __init__(self, sink: EventSink, counters: Counters) -> None:
        self._sink = sink
        self._counters = counters
        self.staged = 0

    def deliver(self, built: Built, deadline: float) -> None:
        """Hand the events to the sink."""
        self._sink.write(built.events)
        self._counters.add(sent=len(built))

    def stage(self, built: Built) -> None:
        """Hand the events to the sink right away (nothing to wait for)."""
        self.deliver(built, math.inf)

    def send_staged(self, deadline: float) -> bool:
        """Nothing is ever staged."""
        return False

    def maintain(self, deadline: float, force: bool) -> None:
        """Nothing to replay."""

    def idle_timeout(self, flush_interval: float) -> float:
        """Sleep a whole interval."""
        return flush_interval

    def has_backlog(self) -> bool:
        """Never any."""
        return False

    def volatile_backlog(self) -> int:
        """Never any."""
        return 0

    def close(self) -> None:
        """Nothing to release."""

    def forget_after_fork(self) -> None:
        """The sink object is shared with the parent; nothing to drop."""


class _Pending(EncodedEvents):
    """One batch to send, and where it came from."""

    __slots__ = ("replay",)

    def __init__(
        self, payload: bytes, count: int, replay: bool, raw: list[bytes] | None = None
    ) -> None:
        super().__init__(payload, count, raw)
        self.replay = replay  # already in a spool file: never spool it again

    @classmethod
    def from_raw(cls, raw: list[bytes], replay: bool) -> _Pending:
        """A batch of events encoded one by one (spool records, halves of a refused batch)."""
        return cls(pack_array(raw), len(raw), replay, raw)


class DaemonDelivery:
    """Deliver to the daemon with pipelined batches, spool fallback and replay."""

    def __init__(self, config: Config, counters: Counters) -> None:
        self._address = config.socket_address()
        self._ack_timeout = config.ack_timeout
        self._token = config.token
        self._token_file = config.token_path() if self._address.startswith("tcp://") else None
        self._counters = counters
        self._connection: Connection | None = None
        self._seq = 0
        self._in_flight: dict[int, _Pending] = {}
        self.backoff = Backoff()
        self._spool = (
            Spool(config.spool_path() / spool_namespace(self._address), config.spool_max_bytes)
            if config.spool
            else None
        )
        self._memory: deque[list[bytes]] = deque()
        self._memory_events = 0
        self._memory_limit = config.max_queue
        self._next_orphan_scan = 0.0
        # Built batches waiting for their turn (see drain): bytes, not buffered calls.
        self._outbox: deque[_Pending] = deque()
        self.staged = 0

    # -- the worker's interface ---------------------------------------------------
    def deliver(self, built: Built, deadline: float) -> None:
        """Send one batch behind any backlog and staged batches, or keep it for later."""
        self.stage(built)
        while self.send_staged(deadline):
            pass

    def stage(self, built: Built) -> None:
        """Queue one batch (its encoded events only) to be sent by ``send_staged``."""
        self._outbox.append(_Pending(built.payload, len(built), replay=False))
        self.staged += len(built)

    def send_staged(self, deadline: float) -> bool:
        """Send the oldest staged batch behind any backlog, or keep it for later.

        Waits for an ``Ack`` when the window is full: that wait paces the worker.
        """
        if not self._outbox:
            return False
        # Left in the outbox until sent: if connecting or replaying fails, _failed keeps
        # the whole outbox behind the batches that were in flight, in order.
        ready = self._ready(deadline, force=False)
        if not self._outbox:
            return True
        pending = self._outbox.popleft()
        self.staged -= pending.count
        if not ready:
            self._keep(pending.raw)
            return True
        # On failure _send has already kept the batch (and the staged ones behind it)
        # and scheduled a reconnect.
        with contextlib.suppress(DaemonError):
            self._send(pending, deadline)
        return True

    def maintain(self, deadline: float, force: bool) -> None:
        """Replay backlog when the daemon answers, then wait for every pending ``Ack``."""
        if self._backlog() or force or time.monotonic() >= self._next_orphan_scan:
            self._ready(deadline, force=force)
        with contextlib.suppress(DaemonError):
            self._settle(deadline)

    def idle_timeout(self, flush_interval: float) -> float:
        """Wake early for the next reconnect attempt when there is backlog to replay."""
        if self._backlog() and self._connection is None:
            return max(0.01, min(flush_interval, self.backoff.next_attempt - time.monotonic()))
        return flush_interval

    def volatile_backlog(self) -> int:
        """Events in the in-memory retry queue (only used with ``spool=False``)."""
        return self._memory_events

    def close(self) -> None:
        """Close the connection and release spool files; count what only memory held."""
        self._keep_staged()
        if self._memory_events:
            self._counters.drop("exit", self._memory_events)
            self._memory.clear()
            self._memory_events = 0
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._counters.connected = False
        if self._spool is not None:
            self._spool.close()

    def forget_after_fork(self) -> None:
        """Drop the parent's connection and spool files (closing only our copies)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._in_flight.clear()
        self._memory.clear()
        self._outbox.clear()
        self.staged = 0
        if self._spool is not None:
            self._spool.forget_after_fork()

    def has_backlog(self) -> bool:
        """True when staged, spooled or retained batches wait to be sent or replayed."""
        return bool(self._outbox) or self._backlog()

    # -- connection ---------------------------------------------------------------
    def _backlog(self) -> bool:
        return bool(self._memory) or (self._spool is not None and self._spool.has_own())

    def _ready(self, deadline: float, force: bool) -> bool:
        """Connected with the backlog replayed; False if the daemon is not reachable now."""
        if self._connection is not None and not self._in_flight and self._connection.is_stale():
            self._connection.close()
            self._connection = None
            force = True  # the daemon went away while we were idle: try again right now
        if self._connection is None:
            if not (force or self.backoff.ready()):
                return False
            timeout = min(_CONNECT_TIMEOUT, deadline - time.monotonic())
            if timeout <= 0:
                return False
            try:
                self._connection = connect(self._address, timeout, self._token, self._token_file)
            except DaemonError as exc:
                self._failed(exc)
                return False
            self.backoff.succeeded()
            self._counters.connected = True
            self._next_orphan_scan = 0.0
        try:
            self._replay(deadline)
        except DaemonError:
            return False
        return True

    def _failed(self, exc: Exception) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._counters.connected = False
        self._counters.add(failed=1)
        delay = self.backoff.failed()
        # Orphaned spool files are looked for on the next successful connection.
        self._next_orphan_scan = max(self._next_orphan_scan, time.monotonic() + delay)
        log_once(
            "daemon_unreachable",
            "uptake: daemon not reachable (%s); keeping events (spool or memory) and"
            " retrying with backoff (next in %.2fs)",
            exc,
            delay,
        )
        fresh = [pending.raw for pending in self._in_flight.values() if not pending.replay]
        self._in_flight.clear()
        if self._spool is None:
            # Batches replayed from memory were taken from its head: put them back there,
            # ahead of what it still holds, so that a second failure keeps the order.
            for raw in reversed(fresh):
                if self._memory_events + len(raw) > self._memory_limit:
                    self._counters.drop("no_spool", len(raw))
                    continue
                self._memory.appendleft(raw)
                self._memory_events += len(raw)
        else:
            for raw in fresh:
                self._keep(raw)
        self._keep_staged()  # behind the batches that were in flight: order is kept

    def _keep_staged(self) -> None:
        while self._outbox:
            pending = self._outbox.popleft()
            self.staged -= pending.count
            self._keep(pending.raw)

    # -- keeping what cannot be sent ----------------------------------------------
    def _keep(self, raw: list[bytes]) -> None:
        if self._spool is None:
            if self._memory_events + len(raw) > self._memory_limit:
                self._counters.drop("no_spool", len(raw))
                return
            self._memory.append(raw)
            self._memory_events += len(raw)
            return
        try:
            stored = self._spool.append(raw)
        except OSError as exc:
            log_once(
                "spool_error", "uptake: cannot write the spool %s: %s", self._spool.directory, exc
            )
            self._counters.drop("spool_error", len(raw))
            return
        if stored:
            self._counters.add(spooled=len(raw))
        else:
            self._counters.drop("spool_full", len(raw))

    def _replay(self, deadline: float) -> None:
        """Send the backlog, oldest first; raises ``DaemonError`` if the daemon goes away."""
        while self._memory:
            raw = self._memory.popleft()
            self._memory_events -= len(raw)
            try:
                self._send(_Pending.from_raw(raw, replay=False), deadline)
            except DaemonError:
                raise
        if self._spool is None:
            return
        scan = time.monotonic() >= self._next_orphan_scan
        if not (scan or self._spool.has_own()):
            return
        self._next_orphan_scan = time.monotonic() + _ORPHAN_SCAN_INTERVAL
        claimed = self._spool.claim()
        try:
            for spool_file in claimed:
                records = spool_file.records()
                for raw in records:
                    self._send(_Pending.from_raw(raw, replay=True), deadline)
                self._settle(deadline)
                self._counters.add(replayed=sum(len(raw) for raw in records))
                spool_file.remove()
        finally:
            claimed.close()

    # -- sending --------------------------------------------------------------------
    def _remaining(self, deadline: float) -> float:
        return min(self._ack_timeout, deadline - time.monotonic())

    def _send(self, pending: _Pending, deadline: float) -> None:
        connection = self._connection
        if connection is None:
            if not pending.replay:
                self._keep(pending.raw)
            raise DaemonError("not connected")
        self._seq += 1
        self._in_flight[self._seq] = pending
        try:
            connection.send(
                encode_batch_payload(self._seq, pending.payload), self._remaining(deadline)
            )
            while self._window_full():
                self._collect(deadline)
        except RefusedError as exc:
            self._resolve_refusal(exc, deadline)
        except DaemonError as exc:
            self._failed(exc)
            raise

    def _window_full(self) -> bool:
        in_flight = self._in_flight
        return (
            len(in_flight) >= _WINDOW
            or sum(len(pending.payload) for pending in in_flight.values()) >= _WINDOW_BYTES
        )

    def _settle(self, deadline: float) -> None:
        try:
            while self._in_flight:
                self._collect(deadline)
        except RefusedError as exc:
            self._resolve_refusal(exc, deadline)
        except DaemonError as exc:
            self._failed(exc)
            raise

    def _collect(self, deadline: float) -> None:
        assert self._connection is not None
        ack = self._connection.wait_ack(self._remaining(deadline))
        pending = self._in_flight.pop(ack.seq, None)
        if pending is not None:
            self._counters.add(sent=ack.accepted + ack.duplicates, duplicates=ack.duplicates)

    def _resolve_refusal(self, refusal: RefusedError, deadline: float) -> None:
        """Resend the batches in flight one at a time, bisecting refused ones."""
        log_once(
            "refused",
            "uptake: the daemon refused an event (%s: %s); isolating it",
            refusal.frame.code,
            refusal.frame.message,
        )
        work = list(self._in_flight.values())
        self._in_flight.clear()
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        while work:
            pending = work.pop(0)
            try:
                if self._connection is None:
                    timeout = min(_CONNECT_TIMEOUT, deadline - time.monotonic())
                    self._connection = connect(
                        self._address, max(timeout, 0.001), self._token, self._token_file
                    )
                self._seq += 1
                self._in_flight[self._seq] = pending
                frame = encode_batch_payload(self._seq, pending.payload)
                self._connection.send(frame, self._remaining(deadline))
                self._collect(deadline)
            except RefusedError:
                self._in_flight.clear()
                self._connection.close()  # type: ignore[union-attr]
                self._connection = None
                if pending.count == 1:
                    self._counters.reject("refused_by_daemon", "the daemon refused an event")
                else:
                    half = pending.count // 2
                    work[:0] = [
                        _Pending.from_raw(pending.raw[:half], pending.replay),
                        _Pending.from_raw(pending.raw[half:], pending.replay),
                    ]
            except DaemonError as exc:
                self._in_flight.clear()
                self._in_flight.update(
                    {-index - 1: item for index, item in enumerate([pending, *work])}
                )
                self._failed(exc)
                raise


def spool_namespace(address: str) -> str:
    """The spool subdirectory for one daemon address.

    Apps on one host share the spool dir but may talk to different daemons; spooled
    events must only ever be replayed to the daemon they were meant for.
    """
    return f"daemon-{zlib.crc32(address.encode()):08x}"


def make_delivery(config: Config, counters: Counters, sink: EventSink | None) -> Delivery:
    """The delivery a client with this configuration uses."""
    if sink is not None:
        return SinkDelivery(sink, counters)
    return DaemonDelivery(config, counters)


def drain(client: Client, delivery: Delivery, deadline: float) -> None:
    """Build and deliver everything in the client's buffer, ``max_batch`` at a time.

    Builds ahead: each round encodes the calls buffered when it starts (whole batches,
    or what there is when nothing is staged), stages the batches, then sends one
    (waiting for an ``Ack`` when the window is full). So while the daemon is the
    bottleneck, the backlog waits as encoded bytes rather than as buffered call tuples,
    which every full garbage collection of the host would walk.
    Staged events count against ``max_queue`` with the buffered calls (``_rearm``).
    """
    buffer = client._buffer
    config = client.config
    max_batch = config.max_batch
    source = config.app
    counters = client._counters
    while True:
        todo = len(buffer)
        # Whole batches only while others wait to be sent: a batch is cut short only
        # when there is nothing else to send (the daemon's cost is partly per batch).
        while delivery.staged < config.max_queue and (
            todo >= max_batch or (todo > 0 and not delivery.staged)
        ):
            count = min(todo, max_batch)
            todo -= count
            # Counted and the threshold lowered before the buffer shrinks: the calls
            # taken stay within max_queue while they are built.
            client._in_progress = count
            _rearm(client, delivery.staged + count)
            chunk: list[Any] = [buffer.popleft() for _ in range(count)]
            built = build_events(chunk, source, counters)
            for piece in _split_by_bytes(built):
                delivery.stage(piece)
            client._in_progress = 0
            _rearm(client, delivery.staged)
        if not delivery.send_staged(deadline):
            return
        _rearm(client, delivery.staged)


def _rearm(client: Client, staged: int) -> None:
    """Set the hot path's threshold when the worker takes calls or sends batches.

    ``max_batch`` when the buffer is short (crossing it wakes the worker), else the room
    ``max_queue`` leaves beside the ``staged`` events (being built or waiting to be
    sent; the slow path drops beyond it).
    """
    wake_at = client._wake_at
    if wake_at <= 0:
        return  # not started, sync, disabled or shut down: not the worker's to change
    max_batch = client.config.max_batch
    room = max(1, client.config.max_queue - staged)
    if len(client._buffer) < max_batch:
        client._wake_at = min(max_batch, room)
    elif wake_at > max_batch:
        client._wake_at = room
    else:
        # Host calls take the slow path now, but the worker is about to shorten the
        # buffer: a threshold above the room would then let them append past max_queue.
        client._wake_at = min(wake_at, room)


def _split_by_bytes(built: Built) -> list[Built]:
    if len(built.payload) <= _MAX_BATCH_BYTES:
        return [built] if built.events else []
    pieces: list[Built] = []
    start = size = 0
    raw = built.raw
    for index, encoded in enumerate(raw):
        if size + len(encoded) > _MAX_BATCH_BYTES and index > start:
            pieces.append(Built.from_raw(built.events[start:index], raw[start:index]))
            start, size = index, 0
        size += len(encoded)
    if start < len(raw):
        pieces.append(Built.from_raw(built.events[start:], raw[start:]))
    return pieces


def run(client: Client) -> None:
    """The worker thread's body: runs until the client is shut down (or the process ends).

    A ``flush()`` is complete when every earlier call was acknowledged or written to the
    spool. With ``spool=False`` events kept in memory for a retry do not count: the flush
    (and the exit) keeps retrying, paced by the backoff, until they are sent or its
    deadline passes.
    """
    delivery = client._delivery
    wake = client._wake
    me = threading.current_thread()
    while True:
        wake.wait(delivery.idle_timeout(client.config.flush_interval))
        wake.clear()
        if client._thread is not me and client._thread is not None:
            return  # replaced (the client was reset for a new process): leave it alone
        with client._cond:
            target = client._flush_requested
            closing = client._closing
            force = client._force
            client._force = False
            pending = target > client._flush_done or closing
            deadline = client._deadline if pending else math.inf
        try:
            drain(client, delivery, deadline)
            delivery.maintain(deadline, force)
            client._counters.log_new_drops()
        except Exception as exc:  # never let the thread die: the host app keeps tracking
            log_once("worker_error", "uptake: unexpected error in the worker thread: %r", exc)
            client._in_progress = 0
        if pending and delivery.volatile_backlog() and time.monotonic() < deadline:
            continue  # not done yet: retry when the backoff allows
        with client._cond:
            client._flush_done = max(client._flush_done, target)
            client._cond.notify_all()
        if closing and not client._buffer:
            delivery.close()
            return


def start_thread(client: Client) -> threading.Thread:
    """Start the worker thread (a daemon thread: it never keeps the process alive)."""
    thread = threading.Thread(target=run, args=(client,), name=WORKER_NAME, daemon=True)
    thread.start()
    return thread
