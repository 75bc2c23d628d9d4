"""The ``status`` query: how the daemon and its database are doing.

The body is JSON-able and its field names are stable (``usage daemon status`` prints them)::

    {"version": "0.1.0", "protocol": 1, "pid": 4242, "uptime_s": 12.5,
     "started_at": "2026-11-23T18:00:00Z", "socket": "/run/user/1000/uptake/uptake.sock",
     "tcp_port": null, "db": "/home/me/.local/share/uptake/uptake.db",
     "db_bytes": 1048576, "events_stored": 123456, "clients_connected": 3,
     "queued_events": 0, "batches_committed": 812, "commits": 97,
     "commit_seconds": 1.9,
     "spool": {"dirs": [...], "scans": 30, "adopted_files": 2, "adopted_events": 750,
               "duplicates": 0, "refused_events": 0, "damaged_files": 0,
               "waiting_files": 1, "oldest_waiting_s": 4.2}}

``spool`` (orphaned SDK spool files the daemon adopted, see ``daemon.adoption``) is
present when adoption is on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from uptake.protocol import PROTOCOL_VERSION
from uptake_aggregator.store.base import Store

__all__ = ["DaemonSnapshot", "daemon_version", "read_events_stored", "status_body"]


@cache
def daemon_version() -> str:
    """The installed uptake version ("unknown" when run from a bare source tree)."""
    try:
        return version("uptake")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class DaemonSnapshot:
    """What the daemon knows about itself at one moment (the server fills it in)."""

    started_at: float  # time.time() at start
    now: float
    socket: Path
    tcp_port: int | None
    db: Path
    clients_connected: int
    queued_events: int
    batches_committed: int
    commits: int
    commit_seconds: float


def read_events_stored(store: Store) -> tuple[int, int]:
    """Committed events in the store (its running counter; no scan) and its bytes on disk.

    Reads on its own, so it never waits behind the writer.
    """
    return store.events_stored(), store.size_bytes()


def status_body(snapshot: DaemonSnapshot, events_stored: int, db_bytes: int) -> dict[str, Any]:
    """Build the ``Result.body`` of a ``status`` query."""
    started = datetime.fromtimestamp(snapshot.started_at, tz=timezone.utc)
    return {
        "version": daemon_version(),
        "protocol": PROTOCOL_VERSION,
        "pid": os.getpid(),
        "uptime_s": round(max(0.0, snapshot.now - snapshot.started_at), 3),
        "started_at": started.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "socket": str(snapshot.socket),
        "tcp_port": snapshot.tcp_port,
        "db": str(snapshot.db),
        "db_bytes": db_bytes,
        "events_stored": events_stored,
        "clients_connected": snapshot.clients_connected,
        "queued_events": snapshot.queued_events,
        "batches_committed": snapshot.batches_committed,
        "commits": snapshot.commits,
        "commit_seconds": round(snapshot.commit_seconds, 3),
    }
