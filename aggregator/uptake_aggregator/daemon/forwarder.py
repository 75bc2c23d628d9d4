"""Forwarding to a central store: every committed event, oldest first, exactly once.

The local database is the outbox (README, *Scale out*). ``Forwarder`` runs on a thread of
its own with its own connections (a read-only one to the local database, one to the
centre), so ingest and acks never wait for the centre:

1. On start, and after every failure, read this host's cursor from the centre (the
   highest local sequence it holds). The centre is the truth: a local cursor lost in a
   crash, or behind because the daemon died between the central COMMIT and its local
   write, only makes the forwarder resend what the centre then drops.
2. Read the next chunk of committed events after the cursor (local sequence order) and
   hand it to ``ForwardTarget.forward``, as the rows are stored (no ``Event`` is built):
   one central transaction that stores the events once and advances the host's cursor.
3. Only after that COMMIT returns, note the new cursor locally
   (``EventWriter.note_forwarded``: written with the next ingest transaction, or within
   a second when idle). Hence no duplicate (the centre drops what its cursor covers)
   and no gap (the local cursor never runs ahead of the centre).
4. Once nothing is left to send, fold the centre's stored events into its rollups
   (``ForwardTarget.fold``), a bounded piece per transaction, a new chunk first whenever
   one is committed: the events leave the host, whose disk is what is at risk, before
   the centre's rollups catch up. A report folds whatever is left before it reads, so
   it is exact either way; folded here, it seldom finds anything left.

Centre down, refusing, wrong password: the error is logged once (password redacted;
again only when it changes), and retried forever with full-jitter exponential backoff
(sleep uniform in [0, min(cap, base * 2^attempt)]), so hosts that lost the centre
together do not return in lock step. Events the centre refuses as data go to its
``dead_letters`` table; each is named once in the log and never retried.

The forward lag of ``usage daemon status``: events committed locally and not yet at the
centre, and the seconds since the oldest of them was committed (observed by this
forwarder's polls, so to within a poll interval; a backlog older than the daemon's start
counts from the start; the daemon notes its commits every 0.2 s).
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from uptake_aggregator.errors import AggregatorError
from uptake_aggregator.store.ingest import ForwardTarget, Outbox
from uptake_aggregator.store.rows import OutboxRow

__all__ = [
    "CRASH_AFTER_COMMIT_ENV",
    "DEFAULT_BACKOFF_MAX_S",
    "DEFAULT_CHUNK_EVENTS",
    "DEFAULT_FOLD_ROWS",
    "POLL_S",
    "ForwardSettings",
    "Forwarder",
]

#: Events per central transaction. Larger chunks fold more events into each rollup row
#: (a user's day, a session): a 1M-event backlog drained at 16% of the raw COPY rate
#: with 50k-event chunks, 11-12% with 20k (docs/benchmarks.md). A chunk and the one
#: read ahead take ~60 MB of the daemon's memory while a backlog drains.
DEFAULT_CHUNK_EVENTS: Final = 50_000
#: A host's sequences per fold transaction: a fold holds its rollup rows' locks until it
#: commits, and a chunk committed meanwhile waits for the next turn of the loop.
DEFAULT_FOLD_ROWS: Final = 200_000
#: Longest sleep between two attempts while the centre fails.
DEFAULT_BACKOFF_MAX_S: Final = 30.0
#: First backoff step (the sleep before the first retry is uniform in [0, this]).
_BACKOFF_BASE_S: Final = 0.5
#: How often an idle forwarder looks for new commits (and the daemon notes its commits).
POLL_S: Final = 0.2
#: Fault injection for the tests only: ``N`` makes the daemon ``SIGKILL`` itself right
#: after its N-th central COMMIT, before the local cursor is noted.
CRASH_AFTER_COMMIT_ENV: Final = "UPTAKE_TEST_CRASH_AFTER_FORWARD_COMMIT"

_log = logging.getLogger("uptake_aggregator.daemon.forwarder")


@dataclass(frozen=True)
class ForwardSettings:
    """Where and how to forward."""

    #: The central store's URL (``postgresql://...``).
    url: str
    #: Its form safe to print (no password).
    shown_url: str
    chunk_events: int = DEFAULT_CHUNK_EVENTS
    fold_rows: int = DEFAULT_FOLD_ROWS
    backoff_max_s: float = DEFAULT_BACKOFF_MAX_S


class Forwarder:
    """Forwards one local store's committed events on a thread; see the module docstring.

    ``open_outbox`` and ``open_target`` are called on the forwarder's thread, so every
    connection it uses is its own. ``noted`` receives the centre's cursor after each
    COMMIT (``EventWriter.note_forwarded``); ``start_cursor`` is the local cursor known
    at start (used until the centre answers).
    """

    def __init__(
        self,
        settings: ForwardSettings,
        *,
        open_outbox: Callable[[], Outbox],
        open_target: Callable[[], ForwardTarget],
        noted: Callable[[int], None],
        start_cursor: int,
    ) -> None:
        self.settings = settings
        self._open_outbox = open_outbox
        self._open_target = open_target
        self._noted = noted
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_at = time.time()
        # What status reads (plain attributes, each written by the forwarder's thread).
        self.host_id: str | None = None
        self.cursor = max(start_cursor, 0)
        self.last_seq = self.cursor
        self.synced = False  # True once the centre's cursor was read
        self.inserted = 0
        self.folded = 0  # events this forwarder folded into the rollups (any host's)
        # Events may wait for the centre's rollups: from this forwarder's chunks, or from
        # before a restart. False once a fold found nothing more to take.
        self._fold_due = True
        self.chunks = 0
        self.dead_letters = 0
        self.failures = 0  # attempts that failed since the last success
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self._logged_error: str | None = None  # logged once until the next success
        # (latest sequence seen, when first seen): the commit time of the oldest event not
        # forwarded is that of the first entry above the cursor.
        self._seen: collections.deque[tuple[int, float]] = collections.deque()
        self._seen_lock = threading.Lock()  # observed from the daemon's loop and this thread
        self._crash_after = int(os.environ.get(CRASH_AFTER_COMMIT_ENV, "0") or 0)
        # The outbox is read on a second thread of the forwarder's, one call at a time:
        # the next chunk is read while the centre works on the current one.
        self._reads = concurrent.futures.ThreadPoolExecutor(1, "uptake-forwarder-read")
        self._ahead: tuple[int, concurrent.futures.Future[list[OutboxRow]]] | None = None

    # -- control --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the forwarder's thread."""
        self._thread = threading.Thread(target=self._run, name="uptake-forwarder", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to stop after its current chunk and wait up to ``timeout`` s.

        A chunk in flight at the centre commits or not; either way the next start resumes
        from the centre's cursor.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- status ---------------------------------------------------------------------------

    def status(self, last_seq: int, now: float | None = None) -> dict[str, Any]:
        """The ``forward`` object of the daemon's status body, ``last_seq`` committed."""
        now = time.time() if now is None else now
        lag = max(0, last_seq - self.cursor)
        with self._seen_lock:
            seen = list(self._seen)
        since = next((at for seq, at in seen if seq > self.cursor), None) if lag else None
        if self.failures:
            state = "retrying"
        elif not self.synced:
            state = "connecting"
        else:
            state = "forwarding" if lag else "caught_up"
        return {
            "target": self.settings.shown_url,
            "host_id": self.host_id,
            "state": state,
            "cursor": self.cursor,
            "lag_events": lag,
            "lag_s": 0.0 if since is None else round(max(0.0, now - since), 1),
            "forwarded_events": self.inserted,
            "folded_events": self.folded,
            "chunks": self.chunks,
            "dead_letters": self.dead_letters,
            "failed_attempts": self.failures,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }

    # -- the thread -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            outbox = self._reads.submit(self._open_outbox).result()
        except AggregatorError as exc:
            _log.error("forwarding disabled: cannot read the local database: %s", exc)
            self._failed(str(exc))
            return
        target: ForwardTarget | None = None
        try:
            self.host_id = outbox.host_id
            _log.info("forwarding to %s as host %s", self.settings.shown_url, self.host_id)
            target = self._open_target()
            attempt = 0
            while not self._stop.is_set():
                try:
                    busy = self._step(outbox, target)
                except Exception as exc:
                    # AggregatorError: the centre (its message is password-free). Anything
                    # else is a bug or a local read error: logged with its traceback, and
                    # retried the same way, so the thread never dies.
                    if not isinstance(exc, AggregatorError):
                        _log.exception("forwarding failed unexpectedly")
                    self._synced_lost()
                    self._failed(str(exc) or type(exc).__name__)
                    attempt += 1
                    self._stop.wait(self._backoff(attempt))
                    continue
                if attempt:
                    _log.info(
                        "forwarding to %s resumed after %d failed attempts",
                        self.settings.shown_url,
                        attempt,
                    )
                    attempt = 0
                    self.failures = 0
                    self._logged_error = None
                if not busy:
                    self._stop.wait(POLL_S)
        finally:
            if target is not None:
                target.close()
            self._reads.submit(outbox.close).result()
            self._reads.shutdown()

    def _step(self, outbox: Outbox, target: ForwardTarget) -> bool:
        """One chunk (after syncing the cursor); False when there was nothing to send."""
        self.observe(self._reads.submit(outbox.last_seq).result())
        host_id = outbox.host_id
        if not self.synced:
            central = target.host_cursor(host_id)
            if central > self.last_seq:
                _log.warning(
                    "the central store holds sequences up to %d for host %s, beyond this "
                    "database's %d: is this database a copy of another host's? Events "
                    "up to %d will not be forwarded",
                    central,
                    host_id,
                    self.last_seq,
                    central,
                )
            self.cursor = central
            self.synced = True
        chunk = self._chunk_after(outbox, self.cursor)
        if not chunk:
            return self._fold(target)
        size = self.settings.chunk_events
        last = chunk[-1][0]
        self._ahead = (last, self._reads.submit(outbox.read_after, last, size))
        outcome = target.forward(host_id, chunk)
        self.chunks += 1
        if self._crash_after and self.chunks >= self._crash_after:
            os.kill(os.getpid(), signal.SIGKILL)  # the tests' crash point: see the constant
        self.cursor = outcome.cursor
        self._noted(outcome.cursor)
        self.inserted += outcome.inserted
        self._fold_due = self._fold_due or outcome.inserted > 0
        for letter in outcome.dead_letters:
            self.dead_letters += 1
            _log.error(
                "the central store refused event %s (local sequence %d) as data: %s; it is "
                "kept in the centre's dead_letters table and not retried",
                letter.id.hex(),
                letter.seq,
                letter.error,
            )
        self._forget_forwarded()
        return True

    def _fold(self, target: ForwardTarget) -> bool:
        """Fold one piece of the centre's events into its rollups if some may wait; True
        if more may wait."""
        if not self._fold_due:
            return False
        folded, more = target.fold(self.settings.fold_rows)
        self.folded += folded
        # Nothing more: every host is folded, or the rest is another host's fold.
        self._fold_due = more
        return more

    def _chunk_after(self, outbox: Outbox, cursor: int) -> list[OutboxRow]:
        """The next chunk: the one read ahead if it follows ``cursor`` and is not empty."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            after, future = ahead
            chunk = future.result()
            if after == cursor and chunk:
                return chunk
        return self._reads.submit(outbox.read_after, cursor, self.settings.chunk_events).result()

    def observe(self, last_seq: int) -> None:
        """Note that events up to ``last_seq`` are committed (any thread; the daemon calls
        it every 0.2 s, so the lag in seconds is right to within that)."""
        with self._seen_lock:
            if last_seq > self.last_seq or not self._seen:
                self._seen.append((last_seq, time.time() if self._seen else self._started_at))
            self.last_seq = max(self.last_seq, last_seq)

    def _forget_forwarded(self) -> None:
        with self._seen_lock:
            seen = self._seen
            while len(seen) > 1 and seen[0][0] <= self.cursor:
                seen.popleft()

    def _synced_lost(self) -> None:
        # The connection failed: the chunk may or may not have committed. Ask the centre.
        self.synced = False

    def _failed(self, message: str) -> None:
        self.failures += 1
        if message != self._logged_error:
            self._logged_error = message
            _log.warning(
                "forwarding to %s failed: %s; retrying with backoff (the local daemon "
                "keeps storing events; this is logged again only if the error changes)",
                self.settings.shown_url,
                message,
            )
        self.last_error = message
        self.last_error_at = round(time.time(), 3)

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^(attempt - 1))]."""
        ceiling = min(self.settings.backoff_max_s, _BACKOFF_BASE_S * 2 ** min(attempt - 1, 30))
        return random.uniform(0.0, ceiling)
