"""WAL checkpoints on their own thread, beside the writer instead of inside its commits.

A checkpoint copies committed pages from the WAL into the database file. SQLite's
automatic checkpoint runs inside the ``COMMIT`` that crosses the threshold, on the single
writer: about 0.4-0.8 µs per stored event of serial work. Here a second connection does
it on its own thread after each commit, while the writer goes on with the next round.
SQLite runs a checkpoint without the GIL and beside a writer (a ``PASSIVE`` checkpoint
never blocks one), so that work moves to the otherwise idle core.

A WAL only starts over from its beginning when a write transaction begins with every
frame already copied. Checkpointing right after each commit usually finishes before the
next round begins. When it does not, or when this thread fails, the writer's automatic
checkpoint (still on, at ~40 MiB) copies what is left, as it did before: a slow or
failing checkpointer only costs speed, and the WAL stays bounded either way.

Example::

    checkpointer = Checkpointer(Path("/tmp/uptake.db"), synchronous="FULL")
    ...                          # the writer: BEGIN ... COMMIT; checkpointer.nudge()
    checkpointer.close()
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Final

__all__ = ["Checkpointer"]

_CHECKPOINT: Final = "PRAGMA wal_checkpoint(PASSIVE)"
_log = logging.getLogger("uptake_aggregator.store.sqlite.checkpointer")


class Checkpointer:
    """Copies committed WAL frames into the database on a thread of its own."""

    def __init__(self, path: Path, *, synchronous: str) -> None:
        self._path = path
        self._synchronous = synchronous
        self._wake = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="uptake-checkpointer", daemon=True)
        self._thread.start()

    def nudge(self) -> None:
        """Ask for a checkpoint (after a commit); returns at once."""
        self._wake.set()

    def close(self) -> None:
        """Stop the thread after the checkpoint it may be running (idempotent)."""
        self._closing = True
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None)
        except sqlite3.Error:
            _log.warning("cannot open %s to checkpoint it; the writer will", self._path)
            return
        try:
            self._serve(conn)
        except sqlite3.Error as exc:
            _log.warning("background checkpoints stopped (%s); the writer checkpoints", exc)
        finally:
            conn.close()

    def _serve(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closing:
                return
            try:
                conn.execute(_CHECKPOINT).fetchall()
            except sqlite3.OperationalError as exc:
                # The writer's own automatic checkpoint still bounds the WAL.
                _log.warning("background checkpoint failed (%s); will retry", exc)
