"""Delivery counters of a client, and the "log each problem once" rule.

Every event ends in exactly one of: sent (acknowledged by the daemon, or handed to a
test sink), rejected (invalid input, by reason), dropped (could not be kept, by reason),
or still queued / spooled. Nothing is dropped silently: uptake counts each
reason and logs its first occurrence through ``logging.getLogger("uptake")``.

Rejection reasons: ``feature_name`` (not a non-empty str of at most 200 characters),
``identity`` (user, account or session not a str of at most 200 characters), ``props``
(a key or value of the wrong type, an int outside 64 bits), ``too_many_props`` (over 32),
``value`` (a seat count that is not an int), ``oversize`` (encoded event over 8 KiB),
``invalid_event`` (an ``Event`` given to ``record()`` that breaks the schema),
``future_ts`` (a ``record()`` event more than a day ahead of this clock),
``refused_by_daemon`` (the daemon answered ``Error`` for this single event).

Drop reasons: ``queue_full`` (``max_queue`` events already buffered), ``spool_full``
(the spool reached ``spool_max_bytes``), ``spool_error`` (the spool dir is not writable),
``no_spool`` (daemon unreachable with the spool disabled and the in-memory retry queue
full), ``exit`` (still unsent when the exit timeout ran out and nowhere to keep it),
``after_shutdown`` (a call on a client already shut down, e.g. from a late atexit handler).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

__all__ = ["Counters", "Stats", "log_once"]

_log = logging.getLogger("uptake")
_logged: set[str] = set()
_logged_lock = threading.Lock()


def log_once(reason: str, message: str, *args: object) -> None:
    """Log ``message`` at WARNING the first time ``reason`` occurs in this process."""
    with _logged_lock:
        if reason in _logged:
            return
        _logged.add(reason)
    _log.warning(message + " (logged once per process)", *args)


def reset_logged() -> None:
    """Forget which reasons were logged (a forked child logs its own problems again)."""
    global _logged_lock  # noqa: PLW0603 -- the parent's lock may be held at fork time
    _logged_lock = threading.Lock()
    _logged.clear()


@dataclass(frozen=True)
class Stats:
    """A snapshot of a client's delivery counters (see ``uptake.stats()``).

    ``queued``: events in memory not yet handed to the daemon or spool; ``sent``: events the
    daemon acknowledged (or a test sink received), of which ``duplicates`` it already had;
    ``spooled``: events written to the on-disk spool, ``replayed``: spooled events later
    acknowledged; ``failed``: delivery attempts that failed (connect, handshake, timeout);
    ``dropped`` / ``rejected``: totals, with the per-reason counts next to them.
    """

    queued: int = 0
    sent: int = 0
    duplicates: int = 0
    spooled: int = 0
    replayed: int = 0
    failed: int = 0
    dropped: int = 0
    rejected: int = 0
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    connected: bool = False


class Counters:
    """Mutable counters shared by the hot path (drops) and the worker (everything else)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent = 0
        self.duplicates = 0
        self.spooled = 0
        self.replayed = 0
        self.failed = 0
        self.dropped: dict[str, int] = {}
        self.rejected: dict[str, int] = {}
        self.connected = False

    def drop(self, reason: str, count: int = 1, log: bool = True) -> None:
        """Count ``count`` events dropped for ``reason`` and log the reason once.

        ``log=False`` on the caller's thread (a full buffer): logging may do I/O, so the
        worker logs the reason instead (``log_new_drops``).
        """
        with self.lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + count
        if log:
            log_once(f"drop:{reason}", "uptake: dropping events: %s", reason)

    def log_new_drops(self) -> None:
        """Log, once each, reasons counted with ``log=False`` (called by the worker)."""
        with self.lock:
            dropped = list(self.dropped)
            rejected = list(self.rejected)
        for reason in dropped:
            log_once(f"drop:{reason}", "uptake: dropping events: %s", reason)
        for reason in rejected:
            log_once(f"reject:{reason}", "uptake: rejected an invalid event (%s)", reason)

    def reject(self, reason: str, detail: str, count: int = 1, log: bool = True) -> None:
        """Count ``count`` invalid events rejected for ``reason`` and log the reason once."""
        with self.lock:
            self.rejected[reason] = self.rejected.get(reason, 0) + count
        if log:
            log_once(
                f"reject:{reason}", "uptake: rejected an invalid event (%s): %s", reason, detail
            )

    def add(
        self,
        *,
        sent: int = 0,
        duplicates: int = 0,
        spooled: int = 0,
        replayed: int = 0,
        failed: int = 0,
    ) -> None:
        """Add to the plain counters."""
        with self.lock:
            self.sent += sent
            self.duplicates += duplicates
            self.spooled += spooled
            self.replayed += replayed
            self.failed += failed

    def snapshot(self, queued: int) -> Stats:
        """Return the counters as a frozen ``Stats``."""
        with self.lock:
            return Stats(
                queued=queued,
                sent=self.sent,
                duplicates=self.duplicates,
                spooled=self.spooled,
                replayed=self.replayed,
                failed=self.failed,
                dropped=sum(self.dropped.values()),
                rejected=sum(self.rejected.values()),
                dropped_by_reason=dict(self.dropped),
                rejected_by_reason=dict(self.rejected),
                connected=self.connected,
            )
