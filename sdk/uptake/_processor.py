"""The batch processor: the bounded buffer, its thresholds, the worker thread and the drain.

One ``BatchProcessor`` per client (as OpenTelemetry's ``BatchProcessor``): the client's
calls append plain tuples to ``buffer``; the worker thread builds them into events
(``_build``) and hands the batches to a ``Delivery`` (``uptake._delivery``). Only this
module reads or writes the processor's state; the hot paths (``Client.track`` and the
module function ``uptake.track``) read ``buffer`` and ``wake_at`` and call ``slow()``.

Hot path: one length check against ``wake_at``, ``time.time_ns()``, one context-variable
read and ``deque.append`` of a plain tuple. No lock, no id, no Struct, no encoding, no
validation: those happen in the worker. ``deque.append`` and ``popleft`` are atomic under
the GIL, so the host threads and the worker share the deque without a lock. ``wake_at``
folds three checks into that one comparison:

* ``max_batch`` normally: crossing it takes the slow path once, which wakes the worker
  and raises ``wake_at`` to the room left so the following calls stay fast;
* the room left while the worker drains: ``max_queue`` minus the calls the worker has
  taken and the batches it built ahead (``_drain``); at that length the slow path drops
  the event and counts it (``queue_full``), so memory is bounded and nothing blocks;
  concurrent threads can overshoot by at most one event each;
* ``0`` before the worker runs (the first call starts it), in sync mode, and after a fork
  until the child's first call; ``-1`` when disabled or shut down.

The worker wakes every ``flush_interval``, when the buffer crosses ``max_batch``, or on
``flush()``/``shutdown()``. Each cycle it pops the buffer in chunks of ``max_batch``,
builds and validates events, and stages them on the delivery; while the daemon lags it
builds ahead, and the staged batches count against ``max_queue`` with the buffered calls.

Fork safety: after a fork (``after_fork``) the child gets a fresh empty buffer, new
locks, fresh counters and no worker thread (started by the child's first call). The
pre-fork buffer belongs to the parent, whose worker sends it once. uWSGI workers, where
Python's fork hooks do not run without ``--py-call-osafterfork``, are reset by the
``uwsgi.post_fork_hook`` the client chains (``uptake._tracker``). Anywhere else a fork
bypasses the hooks, the slow path, ``flush()`` and ``stats()`` notice the new pid and
reset the same way; events the child buffered until then are kept (the hot path has no
pid check: it would cost every call), so the parent's unsent ones may then be doubled.

Exit: ``shutdown`` bounds every socket operation of the final flush by its deadline and
never waits longer than the deadline plus a short grace. Nothing here ever raises into
the host app: the worker logs an unexpected exception once and carries on.
"""

from __future__ import annotations

import math
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from itertools import repeat, starmap
from typing import Any, Final

from uptake._build import Built, build_events
from uptake._config import Config
from uptake._delivery import Delivery, EventSink, make_delivery
from uptake._model import Event
from uptake._stats import Counters, Stats, log_once

__all__ = ["WORKER_NAME", "BatchProcessor"]

WORKER_NAME: Final = "uptake-worker"
_MAX_BATCH_BYTES: Final = 4 * 1024 * 1024
_EXIT_GRACE: Final = 0.5
#: A flush whose reconnects back off past its deadline makes one last attempt this long
#: before it (a Unix or loopback connect takes well under a millisecond).
_LAST_TRY: Final = 0.2
_MANY_CLIENTS: Final = 16

_processors: weakref.WeakSet[BatchProcessor] = weakref.WeakSet()


class BatchProcessor:
    """Buffer, thresholds, worker thread and delivery of one client in one process.

    ``sink``: deliver to this ``EventSink`` instead of the daemon; ``sync``: build and
    deliver each call on the caller's thread (no worker); ``on_fork``: called after the
    processor started over in a forked child (held weakly: pass a bound method of the owner).
    """

    def __init__(
        self,
        config: Config,
        *,
        sink: EventSink | None = None,
        sync: bool = False,
        on_fork: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self._sink = sink
        self._sync = bool(sync)
        self._disabled = config.disabled
        self._closed = False
        # Weak: the client holds its processor, and a cycle would keep both alive until
        # a full collection (counted meanwhile as clients with a worker each).
        self._on_fork = None if on_fork is None else weakref.WeakMethod(on_fork)
        self._init_process_state()
        _processors.add(self)

    def _init_process_state(self) -> None:
        """Everything that belongs to one process (reset in a forked child)."""
        self._pid = os.getpid()
        #: The calls not yet taken by the worker (appended to by the hot paths).
        self.buffer: deque[Any] = deque()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._sync_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.counters = Counters()
        self._delivery: Delivery = make_delivery(self.config, self.counters, self._sink)
        self._flush_requested = 0
        self._flush_done = 0
        #: Whether the last completed flush left nothing unacknowledged.
        self._flush_ok = True
        self._deadline = math.inf
        self._force = False
        self._closing = False
        self._in_progress = 0
        #: The hot path appends while ``len(buffer) < wake_at`` (see the module docstring).
        self.wake_at = -1 if (self._disabled or self._closed) else 0

    @property
    def closed(self) -> bool:
        """True once shut down: later calls are dropped (``after_shutdown``)."""
        return self._closed

    @property
    def started(self) -> bool:
        """True while a worker thread serves this processor."""
        return self._thread is not None

    # -- the rare path of every call ---------------------------------------------------
    def slow(self, item: tuple[Any, ...] | Event) -> None:
        """Start the worker, wake it, drop on a full buffer, or run inline."""
        if self._disabled:
            return
        if self._closed:
            # e.g. an atexit handler of the host that runs after ours
            self.counters.drop("after_shutdown")
            return
        if self._pid != os.getpid():
            self.after_fork(hooks_ran=False)
        if self._sync:
            self._process_now(item)
            return
        if self._thread is None:
            self._start()
        buffer = self.buffer
        max_batch = self.config.max_batch
        # Batches the worker built ahead count against max_queue with the buffered calls.
        taken = self._taken()
        room = self.config.max_queue - taken
        if len(buffer) >= room:
            self.counters.drop("queue_full", log=False)
            self._wake.set()
            return
        buffer.append(item)
        if len(buffer) >= max_batch:
            # The worker may take a batch between the read above and this write, and lower
            # the threshold itself meanwhile: a stale room written over it would let the
            # buffer grow a batch past max_queue. So write, then read again; once nothing
            # was taken in between, every later take is followed by the worker's _rearm.
            while True:
                self.wake_at = max(1, room)
                now_taken = self._taken()
                if now_taken == taken:
                    break
                taken = now_taken
                room = self.config.max_queue - taken
            self._wake.set()

    def _taken(self) -> int:
        """Calls the worker took from the buffer and has not sent yet.

        Being built, or built ahead and staged: they count against ``max_queue`` with
        the buffer.
        """
        return self._in_progress + self._delivery.staged

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._closing:
                self._thread = self._start_thread()
                self.wake_at = self.config.max_batch
        running = sum(1 for processor in list(_processors) if processor._thread is not None)
        if running > _MANY_CLIENTS:
            log_once(
                "many_clients",
                "uptake: %d clients with a worker thread each in this process; create one"
                " Client per process (or use the module functions), not one per request",
                running,
            )

    def _start_thread(self) -> threading.Thread:
        """Start the worker thread (a daemon thread: it never keeps the process alive)."""
        thread = threading.Thread(target=self._run, name=WORKER_NAME, daemon=True)
        thread.start()
        return thread

    def _process_now(self, item: tuple[Any, ...] | Event) -> None:
        with self._sync_lock:
            deadline = time.monotonic() + self.config.exit_timeout
            try:
                built = build_events([item], self.config.app, self.counters)
                if built.events:
                    self._delivery.stage(built)
                    while self._delivery.send_staged(deadline):
                        pass
                    self._delivery.maintain(deadline, force=False)
            except Exception as exc:  # never raise into the host app
                log_once("sync_error", "uptake: unexpected error delivering an event: %r", exc)

    # -- control ------------------------------------------------------------------------
    def flush(self, timeout: float) -> bool:
        """Keep delivering for up to ``timeout`` s; True once every earlier call is acknowledged."""
        if self._disabled or self._closed:
            return True
        if self._pid != os.getpid():
            self.after_fork(hooks_ran=False)
        if self._sync:
            return True
        if self._thread is None:
            self._start()
        if threading.current_thread() is self._thread:
            # Called from the worker itself (a sink, a logging handler): waiting for the
            # worker would only time out.
            return False
        return self._request(timeout, closing=False)

    def _request(self, timeout: float, closing: bool) -> bool:
        with self._cond:
            self._flush_requested += 1
            target = self._flush_requested
            self._deadline = time.monotonic() + max(timeout, 0.0)
            self._force = True
            if closing:
                self._closing = True
        self._wake.set()
        with self._cond:
            done = self._cond.wait_for(lambda: self._flush_done >= target, max(timeout, 0.0))
            return done and self._flush_ok

    def shutdown(self, timeout: float) -> bool:
        """Flush within ``timeout`` s (the rest goes to the spool), then stop the worker."""
        if self._closed:
            return True
        if self._pid != os.getpid():
            self.after_fork(hooks_ran=False)
        if self._thread is not None and threading.current_thread() is self._thread:
            return False
        self.wake_at = -1
        thread = self._thread
        if thread is None:
            if self.buffer or self._delivery.has_backlog():
                thread = self._start_thread()
            else:
                self._closed = True
                self._delivery.close()
                return True
        with self._lock:
            self._thread = thread
        lost_before = self.counters.dropped.get("exit", 0)
        delivered = self._request(timeout, closing=True)
        thread.join(max(timeout, 0.0) + _EXIT_GRACE)
        self._closed = True
        left = len(self.buffer) + self._taken()
        if left:
            self.counters.drop("exit", left)
        lost = self.counters.dropped.get("exit", 0) > lost_before
        return delivered and not (thread.is_alive() or lost)

    def stats(self) -> Stats:
        """Counters of this processor in this process."""
        if self._pid != os.getpid():
            self.after_fork(hooks_ran=False)
        return self.counters.snapshot(queued=len(self.buffer) + self._taken())

    # -- fork ---------------------------------------------------------------------------
    def after_fork(self, hooks_ran: bool = True) -> None:
        """Start over in a forked child: the parent's buffer, thread and files stay its own.

        From the fork hook the buffer holds only the parent's events: they are left to
        the parent. When the pid check finds a fork whose hooks did not run, the buffer
        also holds this child's own calls since the fork, which cannot be told apart:
        it is kept (a parent's unsent pre-fork events may then be stored twice).
        """
        inherited = self.buffer
        self._delivery.forget_after_fork()
        self._init_process_state()
        if not hooks_ran and not (self._disabled or self._closed):
            self.buffer.extend(inherited)
        on_fork = None if self._on_fork is None else self._on_fork()
        if on_fork is not None:
            on_fork()

    # -- the worker -----------------------------------------------------------------------
    def _drain(self, deadline: float) -> None:
        """Build and deliver everything in the buffer, ``max_batch`` at a time.

        Builds ahead: each round encodes the calls buffered when it starts (whole batches,
        or what there is when nothing is staged), stages the batches, then sends one
        (waiting for an ``Ack`` when the window is full). So while the daemon is the
        bottleneck, the backlog waits as encoded bytes rather than as buffered call tuples,
        which every full garbage collection of the host would walk.
        Staged events count against ``max_queue`` with the buffered calls (``_rearm``).
        """
        buffer = self.buffer
        delivery = self._delivery
        config = self.config
        max_batch = config.max_batch
        source = config.app
        counters = self.counters
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
                self._in_progress = count
                self._rearm(delivery.staged + count)
                # popleft called from C (half the cost of a comprehension); each call is
                # atomic, so the host may append meanwhile.
                chunk: list[Any] = list(starmap(buffer.popleft, repeat((), count)))
                built = build_events(chunk, source, counters)
                for piece in _split_by_bytes(built):
                    delivery.stage(piece)
                self._in_progress = 0
                self._rearm(delivery.staged)
            if not delivery.send_staged(deadline):
                return
            self._rearm(delivery.staged)

    def _rearm(self, staged: int) -> None:
        """Set the hot path's threshold when the worker takes calls or sends batches.

        ``max_batch`` when the buffer is short (crossing it wakes the worker), else the
        room ``max_queue`` leaves beside the ``staged`` events (being built or waiting to
        be sent; the slow path drops beyond it).
        """
        wake_at = self.wake_at
        if wake_at <= 0:
            return  # not started, sync, disabled or shut down: not the worker's to change
        max_batch = self.config.max_batch
        room = max(1, self.config.max_queue - staged)
        if len(self.buffer) < max_batch:
            self.wake_at = min(max_batch, room)
        elif wake_at > max_batch:
            self.wake_at = room
        else:
            # Host calls take the slow path now, but the worker is about to shorten the
            # buffer: a threshold above the room would then let them append past max_queue.
            self.wake_at = min(wake_at, room)

    def _run(self) -> None:
        """The worker thread's body: runs until shut down (or the process ends).

        A ``flush()`` is complete when every earlier call was acknowledged by the daemon
        (or refused/dropped, and counted). Until its deadline the worker keeps trying:
        it reconnects when the backoff allows (sleeping until then, never past the
        deadline, with one last attempt just before it), replays this process's spool and
        sends what is staged. At the deadline it gives up and reports False; the events
        stay spooled (or in memory with ``spool=False``) and are sent later.
        """
        delivery = self._delivery
        wake = self._wake
        cond = self._cond
        me = threading.current_thread()
        retry_until = math.inf  # the deadline of the flush being retried, if any
        last_try_for = -1  # the flush whose last attempt before its deadline was made
        while True:
            timeout = delivery.idle_timeout(self.config.flush_interval)
            if retry_until < math.inf:
                timeout = min(timeout, max(0.0, retry_until - _LAST_TRY - time.monotonic()))
            wake.wait(timeout)
            wake.clear()
            if self._thread is not me and self._thread is not None:
                return  # replaced (reset for a new process): leave it alone
            with cond:
                target = self._flush_requested
                closing = self._closing
                force = self._force
                self._force = False
                pending = target > self._flush_done or closing
                deadline = self._deadline if pending else math.inf
            if pending and target != last_try_for and time.monotonic() >= deadline - _LAST_TRY:
                # The backoff would wait past the deadline: try once more now.
                force = True
                last_try_for = target
            try:
                self._drain(deadline)
                delivery.maintain(deadline, force)
                self.counters.log_new_drops()
            except Exception as exc:  # never let the thread die: the host app keeps tracking
                log_once("worker_error", "uptake: unexpected error in the worker thread: %r", exc)
                self._in_progress = 0
            retry_until = math.inf
            if pending:
                waiting = bool(self.buffer) or delivery.unacknowledged()
                if waiting and time.monotonic() < deadline and last_try_for != target:
                    retry_until = deadline
                    continue  # not done yet: retry when the backoff allows
                with cond:
                    self._flush_ok = not waiting
                    self._flush_done = max(self._flush_done, target)
                    cond.notify_all()
            if closing and not self.buffer:
                delivery.close()
                return


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
