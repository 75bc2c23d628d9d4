"""The forwarders' write path into the central store: one transaction per chunk.

A chunk is a host's outbox rows (``rows.OutboxRow``: each event's local sequence and
its row as the host stores it), oldest first. In one transaction: lock the host's row
and drop the events at or below its cursor (already applied: a daemon killed between
the central COMMIT and its local cursor write resends them), COPY the rest straight
into the events inside a savepoint (the usual chunk: only new events), or, when the
centre holds one of them already (forwarded by two hosts), ``INSERT ... SELECT ... ON
CONFLICT (id) DO NOTHING`` from a temp stage table, so each event is stored once; and
move the host's cursor to the chunk's last sequence. The caller moves its local cursor
only after ``forward`` returns, i.e. after the COMMIT: no duplicate and no gap. Every
row inserted carries the host's id and its sequence, which is how ``fold`` finds the
events to bring the rollups up to date with (``rollups``: why the rollups are not
updated in the chunk's transaction, and how a reader stays exact).

The rows go from the host's database to the COPY as they are stored (props as JSON
text, which the server parses into ``jsonb``), with no ``Event`` built on the way:
the forwarder's Python time per event is about that of the COPY's own.

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
    outcome = writer.forward(host_id, outbox.read_after(cursor, 50_000))
    events, more = writer.fold(limit=200_000)
    writer.close()
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import msgspec

from uptake_aggregator.errors import StorageError
from uptake_aggregator.store.postgres.connection import check_version, connect, server_error
from uptake_aggregator.store.postgres.rollups import fold
from uptake_aggregator.store.rows import OutboxRow, event_from_row

if TYPE_CHECKING:
    import psycopg

__all__ = ["EVENT_COPY_COLUMNS", "CentralWriter", "DeadLetter", "ForwardOutcome", "copy_row"]

#: The ``events`` columns of a COPY row (``copy_row``), in order.
EVENT_COPY_COLUMNS: Final = (
    'seq, id, ts, kind, name, "user", account, session, value, props, source, integration, host_id'
)
_STAGE_TABLE: Final = """CREATE TEMP TABLE IF NOT EXISTS stage (
    seq bigint, id bytea, ts bigint, kind text, name text, "user" text, account text,
    session text, value bigint, props text, source text, integration text, host_id text
) ON COMMIT DELETE ROWS"""
# An id twice in one chunk (a host resending inside its own outbox) is inserted once:
# DISTINCT ON keeps its first (lowest sequence) copy.
_INSERT_EVENTS: Final = """
INSERT INTO events (seq, id, ts, kind, name, "user", account, session, value, props, source,
                    integration, host_id)
SELECT DISTINCT ON (id) seq, id, ts, kind, name, "user", account, session, value,
       props::jsonb, source, integration, host_id
FROM stage WHERE seq > %s ORDER BY id, seq
ON CONFLICT (id) DO NOTHING
"""
# A stored prop may be null (JSON has no inf/nan floats): no integration then, as the
# outbox's events have none.
_decode_props: Final = msgspec.json.Decoder(dict[str, bool | int | float | str | None]).decode


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


def _integration(props: str) -> str | None:
    """The ``integration`` prop of a row's props JSON as the SQLite rollups render it
    (Python's ``str``), so both stores count the same distinct integrations."""
    value = _decode_props(props).get("integration")
    return None if value is None else str(value)


def copy_row(row: OutboxRow, host_id: str) -> tuple[Any, ...]:
    """The ``events`` COPY row (``EVENT_COPY_COLUMNS``) of an outbox row of ``host_id``."""
    props = row[9]
    # Most rows carry no integration: the substring test spares decoding their props.
    integration = None if props is None or '"integration"' not in props else _integration(props)
    return (*row, integration, host_id)


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

    def forward(self, host_id: str, chunk: Sequence[OutboxRow]) -> ForwardOutcome:
        """Apply a chunk of outbox rows, oldest first, exactly once (module docs).

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

    def fold(self, limit: int) -> tuple[int, bool]:
        """Fold the next up to ``limit`` sequences of a host whose events are not all in
        the rollups, skipping hosts another fold holds; return the events folded and
        whether more may wait (False: every host is folded, or being folded).

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
        part: list[OutboxRow],
        outcome: ForwardOutcome,
    ) -> int:
        """One chunk's transaction body; returns the host's new cursor."""
        cursor = self._lock_cursor(conn, host_id)
        rows = part if part[0][0] > cursor else [row for row in part if row[0] > cursor]
        if not rows:
            return cursor
        with conn.cursor() as cur:
            if self._copy_new(conn, cur, host_id, rows):
                inserted = len(rows)
            else:
                with cur.copy("COPY stage FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(copy_row(row, host_id))
                cur.execute(_INSERT_EVENTS, (cursor,))
                inserted = max(cur.rowcount, 0)
            last = rows[-1][0]
            cur.execute(
                "UPDATE hosts SET cursor = %s, events = events + %s, last_forward = now()"
                " WHERE host_id = %s",
                (last, inserted, host_id),
            )
        outcome.inserted += inserted
        return int(last)

    def _copy_new(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        cur: psycopg.Cursor[tuple[Any, ...]],
        host_id: str,
        rows: list[OutboxRow],
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
            copying = f"COPY events ({EVENT_COPY_COLUMNS}) FROM STDIN"
            with conn.transaction(), cur.copy(copying) as copy:
                write_row = copy.write_row
                for row in rows:
                    write_row(copy_row(row, host_id))
        except psycopg.errors.UniqueViolation:
            return False
        return True

    def _bury(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        host_id: str,
        row: OutboxRow,
        exc: Exception,
        outcome: ForwardOutcome,
    ) -> int:
        """Record one refused event as a dead letter and move the cursor past it."""
        seq, event_id = row[0], bytes(row[1])
        error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        with conn.transaction():
            cursor = self._lock_cursor(conn, host_id)
            if seq <= cursor:
                return cursor
            # JSON escapes what the server refused (a NUL becomes \u0000): storable text.
            text = msgspec.json.encode(event_from_row(row[1:])).decode()
            conn.execute(
                "INSERT INTO dead_letters (host_id, seq, id, error, event)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (host_id, seq, event_id, error, text),
            )
            conn.execute(
                "UPDATE hosts SET cursor = %s, dead_letters = dead_letters + 1,"
                " last_forward = now() WHERE host_id = %s",
                (seq, host_id),
            )
        outcome.dead_letters.append(DeadLetter(seq, event_id, error))
        return int(seq)

    def close(self) -> None:
        """Close the connection (the next call reconnects)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
