"""The forwarders' write path into the central store: one transaction per chunk.

A chunk is a host's events with their local sequence numbers, oldest first. In one
transaction: lock the host's row and drop the events at or below its cursor (already
applied: a daemon killed between the central COMMIT and its local cursor write resends
them), COPY the rest straight into the events inside a savepoint (the usual chunk: only
new events; their normalised rollup rows, built client-side, are COPYed into
``rollup_queue``), or, when the centre holds one of them already (forwarded by two
hosts), ``INSERT ... SELECT ... ON CONFLICT (id) DO NOTHING RETURNING`` from a temp stage
table, so each event is stored once, queueing only the rows actually inserted; and move
the host's cursor to the chunk's last sequence. The caller moves its local cursor only
after ``forward`` returns, i.e. after the COMMIT: no duplicate and no gap. ``fold``
brings the rollups up to date from the queue (``rollups``: why the rollups are not
updated row by row in the chunk's transaction, and how a reader stays exact).

A chunk the server refuses as data (SQLSTATE class 22 or 23, e.g. a NUL character in a
text) is split in halves, each its own transaction, down to the event(s) at fault, which
go to ``dead_letters`` with the server's message, the cursor moving past them: the rest
is stored and nothing is retried forever.

The COPY into ``events`` is not ordered: two hosts sending the same new events at the
same moment in a different order may deadlock; PostgreSQL aborts one, whose forwarder
retries (by then the other committed, and the ordered staged insert takes over).

Example::

    writer = CentralWriter(url)
    cursor = writer.host_cursor(host_id)
    outcome = writer.forward(host_id, [(seq, event), ...])
    writer.fold(limit=200_000)
    writer.close()
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import msgspec

from uptake.protocol import Event
from uptake_aggregator.errors import StorageError
from uptake_aggregator.store.postgres.connection import check_version, connect, server_error
from uptake_aggregator.store.postgres.rollups import QUEUE_COLUMNS, fold
from uptake_aggregator.store.rows import event_row
from uptake_aggregator.units import DAY_US

if TYPE_CHECKING:
    import psycopg

__all__ = ["CentralWriter", "DeadLetter", "ForwardOutcome"]


_STAGE_COLUMNS: Final = (
    'id, ts, kind, name, "user", account, session, value, props, source, seq, integration'
)
_STAGE_TABLE: Final = """CREATE TEMP TABLE IF NOT EXISTS stage (
    id bytea, ts bigint, kind text, name text, "user" text, account text, session text,
    value bigint, props text, source text, seq bigint, integration text
) ON COMMIT DELETE ROWS"""
# Absent and empty names are the same "no one" (docs/metrics.md): NULL from here on.
# An id twice in one chunk (a host resending inside its own outbox) is inserted once and
# is queued for the rollups once: DISTINCT ON keeps its first (lowest sequence) copy.
_INSERT_EVENTS: Final = f"""
WITH candidates AS (
    SELECT DISTINCT ON (id) * FROM stage WHERE seq > %(cursor)s ORDER BY id, seq
), inserted AS (
    INSERT INTO events (id, ts, kind, name, "user", account, session, value, props, source,
                        host_id, seq)
    SELECT id, ts, kind, name, "user", account, session, value, props::jsonb, source,
           %(host)s, seq
    FROM candidates ORDER BY id
    ON CONFLICT (id) DO NOTHING
    RETURNING id
)
INSERT INTO rollup_queue
SELECT s.id, s.ts, (s.ts / {DAY_US})::integer, s.kind, s.name, nullif(s."user", ''),
       nullif(s.account, ''), nullif(s.session, ''), s.value, s.integration
FROM candidates AS s JOIN inserted USING (id)
"""
_EVENT_COLUMNS: Final = (
    'id, ts, kind, name, "user", account, session, value, props, source, host_id, seq'
)


@dataclass(frozen=True)
class DeadLetter:
    """An event the centre refused as data: its local sequence, id and the server's reason."""

    seq: int
    id: bytes
    error: str


@dataclass
class ForwardOutcome:
    """What one ``forward`` did: the host's central cursor after it, events inserted."""

    cursor: int
    inserted: int = 0
    dead_letters: list[DeadLetter] = field(default_factory=list)


def stage_row(seq: int, event: Event) -> tuple[Any, ...]:
    """The stage table row of ``event`` (props as JSON text, the integration prop as text).

    The integration is rendered as the SQLite rollup renders it (Python's ``str``), so
    both stores count the same distinct integrations.
    """
    props = event.props
    integration = str(props["integration"]) if props and "integration" in props else None
    return (*event_row(event), seq, integration)


def _queue_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """The ``rollup_queue`` row of a stage row, normalised as ``_INSERT_EVENTS`` does in SQL.

    After a COPY straight into ``events`` every row is new: built here, the rows go to the
    server once more only as queue rows (not as a stage too, then normalised there).
    """
    event_id, ts, kind, name, user, account, session, value, _, _, _, integration = row
    # PostgreSQL's integer division truncates towards zero, Python's // floors.
    day = ts // DAY_US if ts >= 0 else -(-ts // DAY_US)
    return (
        event_id,
        ts,
        day,
        kind,
        name,
        user or None,
        account or None,
        session or None,
        value,
        integration,
    )


def _is_data_error(exc: Exception) -> bool:
    """True for errors about the rows themselves (SQLSTATE classes 22, 23), not the server."""
    import psycopg

    if isinstance(exc, psycopg.DataError | psycopg.IntegrityError):
        return True
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return isinstance(exc, psycopg.Error) and sqlstate[:2] in {"22", "23"}


class CentralWriter:
    """One connection to the central store for one forwarding daemon.

    Connects on first use; any failure but a data error closes the connection (the next
    call reconnects) and raises ``StorageError`` with a password-free message.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._conn is None or self._conn.closed:
            import psycopg

            conn = connect(self.url)
            try:
                # The stage tables have no statistics: a chunk's estimates can pass
                # jit_above_cost and pay ~100 ms of JIT compilation per statement.
                conn.execute("SET jit = off")
                check_version(self.url, conn)
                conn.execute(_STAGE_TABLE)
                conn.commit()
            except psycopg.Error as exc:
                conn.close()
                raise server_error(self.url, exc) from None
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _fail(self, exc: Exception) -> StorageError:
        self.close()
        return server_error(self.url, exc)

    def host_cursor(self, host_id: str) -> int:
        """The highest local sequence of ``host_id`` the centre holds (registering the host)."""
        import psycopg

        conn = self._connection()
        try:
            with conn.transaction():
                conn.execute(
                    "INSERT INTO hosts (host_id) VALUES (%s) ON CONFLICT DO NOTHING", (host_id,)
                )
                row = conn.execute(
                    "SELECT cursor FROM hosts WHERE host_id = %s", (host_id,)
                ).fetchone()
        except psycopg.Error as exc:
            raise self._fail(exc) from None
        return int(row[0]) if row is not None else 0

    def forward(self, host_id: str, chunk: Sequence[tuple[int, Event]]) -> ForwardOutcome:
        """Apply a chunk of (local seq, event), oldest first, exactly once (module docs).

        Returns once committed. Raises ``StorageError`` when the server cannot be reached
        or fails (nothing of the chunk is applied then); rows refused as data go to the
        dead letters instead.
        """
        import psycopg

        conn = self._connection()
        outcome = ForwardOutcome(cursor=0)
        pending = [list(chunk)]
        try:
            while pending:
                part = pending.pop()
                try:
                    with conn.transaction():
                        outcome.cursor = self._apply(conn, host_id, part, outcome)
                except psycopg.Error as exc:
                    if not _is_data_error(exc) or conn.closed or conn.broken:
                        raise
                    if len(part) == 1:
                        outcome.cursor = self._bury(conn, host_id, part[0], exc, outcome)
                    else:
                        half = len(part) // 2
                        pending += [part[half:], part[:half]]  # the older half first
        except psycopg.Error as exc:
            raise self._fail(exc) from None
        return outcome

    def fold(self, limit: int) -> int:
        """Fold up to ``limit`` queued rows into the rollups, skipping rows another fold
        holds; return how many (0: the queue is empty, or all of it is being folded).

        Raises ``StorageError`` as ``forward`` does; nothing is folded then.
        """
        import psycopg

        conn = self._connection()
        try:
            return fold(conn, limit=limit)
        except psycopg.Error as exc:
            raise self._fail(exc) from None

    def _lock_cursor(self, conn: psycopg.Connection[tuple[Any, ...]], host_id: str) -> int:
        conn.execute("INSERT INTO hosts (host_id) VALUES (%s) ON CONFLICT DO NOTHING", (host_id,))
        row = conn.execute(
            "SELECT cursor FROM hosts WHERE host_id = %s FOR UPDATE", (host_id,)
        ).fetchone()
        return int(row[0]) if row is not None else 0

    def _apply(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        host_id: str,
        part: list[tuple[int, Event]],
        outcome: ForwardOutcome,
    ) -> int:
        """One chunk's transaction body; returns the host's new cursor."""
        cursor = self._lock_cursor(conn, host_id)
        rows = [(seq, event) for seq, event in part if seq > cursor]
        if not rows:
            return cursor
        staged = [stage_row(seq, event) for seq, event in rows]
        with conn.cursor() as cur:
            if self._copy_new(conn, cur, host_id, staged):
                with cur.copy(f"COPY rollup_queue ({QUEUE_COLUMNS}) FROM STDIN") as copy:
                    for row in staged:
                        copy.write_row(_queue_row(row))
                inserted = len(staged)
            else:
                with cur.copy(f"COPY stage ({_STAGE_COLUMNS}) FROM STDIN") as copy:
                    for row in staged:
                        copy.write_row(row)
                cur.execute(_INSERT_EVENTS, {"host": host_id, "cursor": cursor})
                inserted = max(cur.rowcount, 0)
            last = rows[-1][0]
            cur.execute(
                "UPDATE hosts SET cursor = %s, events = events + %s, last_forward = now()"
                " WHERE host_id = %s",
                (last, inserted, host_id),
            )
        outcome.inserted += inserted
        return last

    def _copy_new(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        cur: psycopg.Cursor[tuple[Any, ...]],
        host_id: str,
        staged: list[tuple[Any, ...]],
    ) -> bool:
        """COPY the rows straight into ``events``; False (nothing kept) if one is stored.

        The usual chunk holds only new events, and COPY inserts rows in bulk where
        ``INSERT ... ON CONFLICT`` checks and inserts them one by one (measured: about
        half the time of the staged insert). An event the centre holds already (resent,
        or forwarded by another host too) fails the COPY, inside a savepoint: then the
        staged ``ON CONFLICT DO NOTHING`` insert sorts it out.
        """
        import psycopg

        try:
            copying = f"COPY events ({_EVENT_COLUMNS}) FROM STDIN"
            with conn.transaction(), cur.copy(copying) as copy:
                for row in staged:
                    copy.write_row((*row[:10], host_id, row[10]))
        except psycopg.errors.UniqueViolation:
            return False
        return True

    def _bury(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        host_id: str,
        row: tuple[int, Event],
        exc: Exception,
        outcome: ForwardOutcome,
    ) -> int:
        """Record one refused event as a dead letter and move the cursor past it."""
        seq, event = row
        error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        with conn.transaction():
            cursor = self._lock_cursor(conn, host_id)
            if seq <= cursor:
                return cursor
            # JSON escapes what the server refused (a NUL becomes \u0000): storable text.
            text = msgspec.json.encode(event).decode()
            conn.execute(
                "INSERT INTO dead_letters (host_id, seq, id, error, event)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (host_id, seq, event.id, error, text),
            )
            conn.execute(
                "UPDATE hosts SET cursor = %s, dead_letters = dead_letters + 1,"
                " last_forward = now() WHERE host_id = %s",
                (seq, host_id),
            )
        outcome.dead_letters.append(DeadLetter(seq, event.id, error))
        return seq

    def close(self) -> None:
        """Close the connection (the next call reconnects)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
