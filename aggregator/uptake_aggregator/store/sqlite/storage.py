"""The event store: exactly-once ingest of event batches into SQLite, rollups included.

One ``Storage`` owns the only write connection (WAL, used from a worker thread).
``ingest`` takes several batches at once, so the daemon's writer can coalesce batches
from all clients into one transaction (group commit) and acknowledge each batch once
that transaction commits.
Readers (reports) open their own read-only connections with ``connect_readonly``.

Example::

    storage = await Storage.open(Path("/tmp/uptake.db"))
    [result] = await storage.ingest([events])
    print(result.accepted, result.duplicates)
    await storage.close()
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cache, partial
from itertools import chain
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import anyio

from uptake.protocol import Event
from uptake_aggregator.errors import StorageError
from uptake_aggregator.store.ingest import IngestResult
from uptake_aggregator.store.rows import event_from_row, event_row
from uptake_aggregator.store.sqlite.checkpointer import Checkpointer
from uptake_aggregator.store.sqlite.outbox import EVENT_COLUMNS, SqliteOutbox
from uptake_aggregator.store.sqlite.readonly import connect_readonly, db_bytes, events_stored
from uptake_aggregator.store.sqlite.rollups import Covered, Rollups
from uptake_aggregator.store.sqlite.schema import MIGRATIONS, SCHEMA_VERSION

__all__ = ["IngestResult", "Storage", "connect_readonly", "db_bytes", "read_events"]

# The last column is the local sequence (schema v7), given in commit order.
_INSERT: Final = "INSERT {verb} INTO events VALUES (?, ?, ?, ?, ?, ?, ?, {rest}, ?)"
# Most events carry no value and no props: their rows bind NULL literals instead. The
# sqlite3 module passes None (and bytes) through its adapter registry, a lookup per value
# that costs more than the insert's B-tree work for those columns; bytearray ids skip it.
_INSERT_OR_IGNORE: Final = _INSERT.format(verb="OR IGNORE", rest="?, ?, ?")
_INSERT_OR_IGNORE_PLAIN: Final = _INSERT.format(verb="OR IGNORE", rest="NULL, NULL, ?")
_INSERT_NEW: Final = _INSERT.format(verb="", rest="?, ?, ?")
_INSERT_NEW_PLAIN: Final = _INSERT.format(verb="", rest="NULL, NULL, ?")
#: Raw event rows per statement execution (multi-row VALUES): this halves the insert's
#: cost per event (sqlite3-module and statement overhead per execution). The rollup
#: upserts measured no gain: their cost is B-tree work. 64 rows of up to 11 values stay
#: under the 999 host parameters of old SQLite builds.
_ROWS_PER_STATEMENT: Final = 64
# Under SQLite's default limit of 999 host parameters on old builds.
_LOOKUP_CHUNK: Final = 900

_T = TypeVar("_T")


def _event_rows(events: Iterable[Event], after: int) -> tuple[list[Any], list[Any]]:
    """Row values, flat, for ``_INSERT_*_PLAIN`` (no value, no props) and the full inserts.

    The events get the local sequence numbers after ``after``, in order.
    """
    plain: list[Any] = []
    full: list[Any] = []
    for seq, event in enumerate(events, start=after + 1):
        if event.value is None and event.props is None:
            plain += (
                bytearray(event.id),
                event.ts,
                event.kind,
                event.name,
                event.user,
                event.account,
                event.session,
                event.source,
                seq,
            )
        else:
            full += event_row(event)
            full.append(seq)
    return plain, full


def read_events(
    conn: sqlite3.Connection, since_us: int | None = None, until_us: int | None = None
) -> Iterator[Event]:
    """Yield the stored events with ``since_us <= ts < until_us``, in id (time) order.

    For export and inspection; reports read the rollups instead. Streams row by row, so
    memory stays flat whatever the database size.
    """
    rows = conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE ts >= ? AND ts < ? ORDER BY id",
        (
            since_us if since_us is not None else -(2**63),
            until_us if until_us is not None else 2**63 - 1,
        ),
    )
    for row in rows:
        yield event_from_row(row)


class Storage:
    """The single writer of an uptake database.

    Call ``Storage.open`` (creates and migrates the file), then ``ingest`` (calls are
    serialised), then ``close``. The connection is a stdlib one used from a worker
    thread, one job at a time: a whole ``ingest`` transaction is one hop to that thread
    rather than one per statement (a hop costs ~100 µs, as much as ~30 event inserts).
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, checkpointer: Checkpointer) -> None:
        self._conn = conn
        self._limiter = anyio.CapacityLimiter(1)
        self._transaction = anyio.Lock()
        self._covered = Covered()
        self._checkpointer = checkpointer
        self.path = path
        # The single writer owns the sequence: the last number given, and the forward
        # cursor as stored and as last noted by the forwarder (any thread).
        self._seq, self._forwarded_saved = _read_cursors(conn)
        self._forwarded_noted = self._forwarded_saved

    @classmethod
    async def open(cls, path: Path, *, synchronous: Literal["FULL", "NORMAL"] = "FULL") -> Storage:
        """Open (creating if needed) and migrate the database at ``path``.

        ``synchronous=FULL`` (the default) makes a commit durable across power loss, not
        just across a crash of the daemon; group commit keeps its cost per batch small.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = await anyio.to_thread.run_sync(_connect, path, synchronous)
        return cls(conn, path, Checkpointer(path, synchronous=synchronous))

    async def _run(self, job: Callable[[], _T]) -> _T:
        # Not abandoned on cancellation: a started job always runs to its end (COMMIT or
        # ROLLBACK), and the cancellation reaches the caller afterwards.
        return await anyio.to_thread.run_sync(job, limiter=self._limiter)

    async def ingest(
        self,
        batches: Sequence[Sequence[Event]],
        *,
        written: Callable[[], None] | None = None,
    ) -> list[IngestResult]:
        """Store the batches in one transaction; return one result per batch, in order.

        Events whose id is already stored (or repeated inside the batches) count as
        duplicates and change nothing, so a resent batch is harmless. When this returns,
        the transaction is committed; if it raises, nothing of these batches is stored.

        ``written`` is called (on the caller's thread) once every row is written and the
        ``COMMIT`` begins: the commit writes the WAL and syncs it without holding the GIL,
        so the caller may run Python meanwhile (the daemon decodes the next frames).
        """
        # One transaction at a time, its two halves on the worker thread, not cancellable
        # in between: a started transaction always ends in COMMIT or ROLLBACK.
        with anyio.CancelScope(shield=True):
            async with self._transaction:
                forwarded = self._forwarded_noted
                accepted, user_feature_rows = await self._run(
                    partial(
                        _write,
                        self._conn,
                        batches,
                        self._covered,
                        self._seq,
                        None if forwarded == self._forwarded_saved else forwarded,
                    )
                )
                try:
                    if written is not None:
                        written()
                except BaseException:
                    await self._run(partial(self._conn.execute, "ROLLBACK"))
                    raise
                await self._run(
                    partial(
                        _commit,
                        self._conn,
                        self._covered,
                        user_feature_rows,
                        self._checkpointer.nudge,
                    )
                )
                self._seq += sum(accepted)
                self._forwarded_saved = forwarded
        return [
            IngestResult(accepted=new, duplicates=len(batch) - new)
            for batch, new in zip(batches, accepted, strict=True)
        ]

    def last_seq(self) -> int:
        """The local sequence of the latest committed event (no I/O)."""
        return self._seq

    def open_outbox(self) -> SqliteOutbox:
        """The committed events in commit order, on a read-only connection of their own."""
        return SqliteOutbox(connect_readonly(self.path))

    def forward_cursor(self) -> int:
        """The forward cursor as last noted (-1: this database was never forwarded)."""
        return self._forwarded_noted

    def note_forwarded(self, seq: int) -> None:
        """Remember that the centre holds every event up to ``seq`` (from any thread).

        Written with the next ingest transaction (no commit of its own under load), or by
        ``save_forwarded``. Losing it in a crash is harmless: the forwarder starts from
        the centre's cursor, and a prune keeps more than it must.
        """
        self._forwarded_noted = max(seq, self._forwarded_noted)

    async def save_forwarded(self) -> None:
        """Write the noted forward cursor now if no transaction has carried it yet."""
        with anyio.CancelScope(shield=True):
            async with self._transaction:
                forwarded = self._forwarded_noted
                if forwarded != self._forwarded_saved:
                    await self._run(partial(_save_forwarded, self._conn, forwarded))
                    self._forwarded_saved = forwarded

    async def events_stored(self) -> int:
        """Number of distinct events stored (a counter kept at ingest; no table scan)."""
        async with self._transaction:  # never from inside an uncommitted transaction
            return await self._run(partial(events_stored, self._conn))

    def db_bytes(self) -> int:
        """Bytes on disk, WAL included."""
        return db_bytes(self.path)

    async def close(self) -> None:
        """Checkpoint and close the connection; the file stays consistent without this."""
        await self.save_forwarded()
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._checkpointer.close)
            await self._run(partial(_close, self._conn))


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open the database at {path}: {exc}") from None
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA busy_timeout=5000")
        # The Checkpointer copies the WAL after each commit on its own thread; this
        # automatic one, inside a COMMIT, only runs when that falls behind by ~40 MiB (or
        # has failed), so the WAL stays bounded either way.
        conn.execute("PRAGMA wal_autocheckpoint=10000")
        # A 32 MiB page cache (SQLite's default is 2 MiB): a group commit of ~16k events
        # dirties more pages than 2 MiB holds, which spilled to the WAL mid-transaction
        # and re-read rollup pages from the OS. Measured ~7% less daemon CPU per event;
        # the daemon's RSS is bounded ~35 MiB higher. With commits of ~40k events
        # (32-batch SDK windows), 96 MiB measured slower again (0.87x in 4 pairs).
        conn.execute("PRAGMA cache_size=-32768")
        _migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _read_cursors(conn: sqlite3.Connection) -> tuple[int, int]:
    """The last local sequence given and the stored forward cursor."""
    counters = dict(
        conn.execute("SELECT name, value FROM counters WHERE name IN ('seq', 'forwarded')")
    )
    return int(counters["seq"]), int(counters["forwarded"])


def _save_forwarded(conn: sqlite3.Connection, forwarded: int) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("UPDATE counters SET value = ? WHERE name = 'forwarded'", (forwarded,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _write(
    conn: sqlite3.Connection,
    batches: Sequence[Sequence[Event]],
    covered: Covered,
    seq: int,
    forwarded: int | None,
) -> tuple[list[int], list[tuple[Any, ...]]]:
    """The ingest transaction up to its ``COMMIT`` (on the worker thread).

    The new events get the local sequence numbers after ``seq``; ``forwarded`` (when
    not None) is the forward cursor to store with them. Returns the new events per batch
    and the ``user_feature`` rows written (for ``Covered`` once committed). On failure
    it rolls back and raises.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        rollups = Rollups()
        accepted = _insert_events(conn, batches, rollups, seq)
        for sql, rows in rollups.statements(covered):
            conn.executemany(sql, rows)
        new = sum(accepted)
        conn.execute("UPDATE counters SET value = value + ? WHERE name = 'events'", (new,))
        conn.execute("UPDATE counters SET value = ? WHERE name = 'seq'", (seq + new,))
        if forwarded is not None:
            conn.execute("UPDATE counters SET value = ? WHERE name = 'forwarded'", (forwarded,))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return accepted, rollups.user_feature_rows


def _commit(
    conn: sqlite3.Connection,
    covered: Covered,
    user_feature_rows: list[tuple[Any, ...]],
    committed: Callable[[], None],
) -> None:
    """Commit what ``_write`` wrote (or roll it back and raise); then ``committed()``."""
    try:
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    committed()
    covered.add(user_feature_rows)


def _insert_events(
    conn: sqlite3.Connection, batches: Sequence[Sequence[Event]], rollups: Rollups, seq: int
) -> list[int]:
    """Insert the events not stored yet, fold them into ``rollups``; new events per batch.

    An id repeated across batches is new (at most) in the first batch naming it. The
    new events get the local sequence numbers after ``seq`` (a duplicate gets none).
    """
    # Fast path: insert every row (one statement per row shape for all batches). When all
    # were inserted, every event was new and no id repeated, which is the usual case: no
    # dict of ids is built (hashing 40k fresh ids cost ~5% of the writer's time). Only
    # when some were ignored find out which, so the rollups count each event once.
    conn.execute("SAVEPOINT batch")
    plain, full = _event_rows(chain.from_iterable(batches), seq)
    inserted = 0
    if plain:
        inserted += _insert_rows(conn, _INSERT_OR_IGNORE_PLAIN, plain)
    if full:
        inserted += _insert_rows(conn, _INSERT_OR_IGNORE, full)
    if inserted == sum(len(batch) for batch in batches):
        conn.execute("RELEASE batch")
        rollups.add(chain.from_iterable(batches))
        return [len(batch) for batch in batches]
    conn.execute("ROLLBACK TO batch")
    seen = _stored_ids(conn, list({event.id for batch in batches for event in batch}))
    fresh: list[Event] = []
    accepted: list[int] = []
    for batch in batches:
        count = len(fresh)
        for event in batch:
            if event.id not in seen:
                seen.add(event.id)
                fresh.append(event)
        accepted.append(len(fresh) - count)
    plain, full = _event_rows(fresh, seq)
    if plain:
        _insert_rows(conn, _INSERT_NEW_PLAIN, plain)
    if full:
        _insert_rows(conn, _INSERT_NEW, full)
    conn.execute("RELEASE batch")
    rollups.add(fresh)
    return accepted


@cache
def _multi_row_sql(sql: str, rows: int) -> str:
    """``sql`` (an INSERT of one ``VALUES (...)`` row) inserting ``rows`` rows."""
    start = sql.index("VALUES (") + len("VALUES ")
    end = sql.index(")", start) + 1
    return sql[:start] + ", ".join([sql[start:end]] * rows) + sql[end:]


def _insert_rows(conn: sqlite3.Connection, sql: str, values: list[Any]) -> int:
    """Insert rows given as flat ``values`` with ``sql``, up to 64 rows per execution.

    Returns the rows inserted. Chunk sizes are powers of two: few distinct statements.
    """
    width = sql.count("?")
    rows = len(values) // width
    inserted = 0
    done = 0
    size = _ROWS_PER_STATEMENT
    while done < rows:
        while size > rows - done:
            size //= 2
        step = size * width
        start, end = done * width, (done + (rows - done) // size * size) * width
        chunks = [values[i : i + step] for i in range(start, end, step)]
        inserted += conn.executemany(_multi_row_sql(sql, size), chunks).rowcount
        done = end // width
    return inserted


def _stored_ids(conn: sqlite3.Connection, ids: list[bytes]) -> set[bytes]:
    stored: set[bytes] = set()
    for start in range(0, len(ids), _LOOKUP_CHUNK):
        chunk = ids[start : start + _LOOKUP_CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(f"SELECT id FROM events WHERE id IN ({marks})", chunk)
        stored.update(row[0] for row in rows)
    return stored


def _close(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0
        if current > SCHEMA_VERSION:
            raise StorageError(
                f"database {path} has schema version {current}, newer than this uptake "
                f"(version {SCHEMA_VERSION}): upgrade uptake"
            )
        for version in range(current, SCHEMA_VERSION):
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version + 1,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
