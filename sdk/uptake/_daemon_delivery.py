"""Delivering to the daemon: pipelined ``Batch`` frames, the spool fallback and its replay.

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

Batches are pipelined over one ``uptake.client.Connection``: up to ``_WINDOW`` ``Batch``
frames may await their ``Ack`` at once, so encoding the next batch overlaps the daemon's
commit of the previous one. Acks are matched by ``seq``. Every socket operation has a
timeout, so a daemon that stalls costs the worker at most that long and never the host app.

Reconnects are paced by ``Backoff``: exponential from 50 ms to 30 s with "equal jitter"
(half the delay fixed, half random) so many clients of a restarted daemon do not all
reconnect in the same millisecond.
"""

from __future__ import annotations

import contextlib
import os
import random
import struct
import time
from collections import deque
from typing import Final

import msgspec

from uptake._build import Built, EncodedEvents, pack_array
from uptake._config import Config
from uptake._spool import Spool
from uptake._stats import Counters, log_once
from uptake.client import (
    TCP_PREFIX,
    BatchRefusedError,
    Connection,
    DaemonError,
    connect,
)
from uptake.spool import namespace_dir, spool_namespace

__all__ = ["Backoff", "DaemonDelivery", "encode_batch_payload", "spool_namespace"]

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


class _RawBatch(msgspec.Struct, tag="batch", tag_field="type"):
    """Encodes exactly like ``protocol.Batch`` but splices the pre-encoded event array."""

    seq: int
    events: msgspec.Raw


_encoder: Final = msgspec.msgpack.Encoder()
_LENGTH: Final = struct.Struct(">I")


def encode_batch_payload(seq: int, events: bytes) -> bytearray:
    """Return a complete ``Batch`` frame; ``events`` is the msgpack array of the events."""
    frame = bytearray()
    _encoder.encode_into(_RawBatch(seq, msgspec.Raw(events)), frame, _LENGTH.size)
    _LENGTH.pack_into(frame, 0, len(frame) - _LENGTH.size)
    return frame


class Backoff:
    """Delays between reconnect attempts: exponential, capped, with equal jitter."""

    def __init__(self, base: float = 0.05, cap: float = 30.0) -> None:
        self._base = base
        self._cap = cap
        self._failures = 0
        self.next_attempt = 0.0  # time.monotonic() before which we do not try again

    def failed(self) -> float:
        """Record a failed attempt; return the delay until the next one."""
        ceiling = min(self._cap, self._base * 2.0**self._failures)
        self._failures = min(self._failures + 1, 30)
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        self.next_attempt = time.monotonic() + delay
        return delay

    def succeeded(self) -> None:
        """Reset after a successful handshake."""
        self._failures = 0
        self.next_attempt = 0.0

    def ready(self) -> bool:
        """True when an attempt is allowed now."""
        return time.monotonic() >= self.next_attempt


class _Pending(EncodedEvents):
    """One batch to send, and where it came from."""

    __slots__ = ("acked_into", "replay")

    def __init__(
        self, payload: bytes, count: int, replay: bool, raw: list[bytes] | None = None
    ) -> None:
        super().__init__(payload, count, raw)
        self.replay = replay  # already in a spool file: never spool it again
        #: A whole spool record: (its file's acknowledged record numbers, its number).
        self.acked_into: tuple[set[int], int] | None = None

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
        self._token_file = config.token_path() if self._address.startswith(TCP_PREFIX) else None
        self._counters = counters
        self._connection: Connection | None = None
        self._seq = 0
        self._in_flight: dict[int, _Pending] = {}
        self.backoff = Backoff()
        self._spool = (
            Spool(
                namespace_dir(config.spool_path(), self._address),
                config.spool_max_bytes,
                address=self._address,
            )
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

    # -- the processor's interface (uptake._delivery.Delivery) --------------------
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

    def unacknowledged(self) -> bool:
        """True while batches wait: staged, in flight, in memory or in own spool files."""
        return bool(self._in_flight) or self.has_backlog()

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
                self._connection = self._connect(timeout)
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

    def _connect(self, timeout: float) -> Connection:
        return connect(
            self._address,
            timeout,
            token=self._token,
            token_file=self._token_file,
            client_name=f"uptake-python pid={os.getpid()}",
        )

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
            self._send(_Pending.from_raw(raw, replay=False), deadline)
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
                for number, raw in enumerate(records):
                    # A replay cut short by the daemon going away resumes after the
                    # records it acknowledged: each event is counted sent once.
                    if number in spool_file.acked:
                        continue
                    pending = _Pending.from_raw(raw, replay=True)
                    pending.acked_into = (spool_file.acked, number)
                    self._send(pending, deadline)
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
        except BatchRefusedError as exc:
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
        except BatchRefusedError as exc:
            self._resolve_refusal(exc, deadline)
        except DaemonError as exc:
            self._failed(exc)
            raise

    def _collect(self, deadline: float) -> None:
        assert self._connection is not None
        ack = self._connection.wait_ack(self._remaining(deadline))
        pending = self._in_flight.pop(ack.seq, None)
        if pending is not None:
            if pending.acked_into is not None:
                acked, number = pending.acked_into
                acked.add(number)
            self._counters.add(sent=ack.accepted + ack.duplicates, duplicates=ack.duplicates)

    def _resolve_refusal(self, refusal: BatchRefusedError, deadline: float) -> None:
        """Resend the batches in flight one at a time, bisecting refused ones."""
        log_once(
            "refused",
            "uptake: the daemon refused an event (%s: %s); isolating it",
            refusal.code,
            refusal.reason,
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
                    self._connection = self._connect(max(timeout, 0.001))
                self._seq += 1
                self._in_flight[self._seq] = pending
                frame = encode_batch_payload(self._seq, pending.payload)
                self._connection.send(frame, self._remaining(deadline))
                self._collect(deadline)
            except BatchRefusedError:
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
