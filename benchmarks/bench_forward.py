"""Benchmark: forwarding a backlog to the central PostgreSQL, against the raw COPY ceiling.

Builds a local database holding a backlog of N events (default 1M: 2,000 users of 200
accounts in sessions of feature events, some with props, integrations, logins, seats),
then in one run times, in alternation:

- **forward**: a real daemon (``python -m uptake_aggregator --foreground --forward URL``)
  on that database, into a fresh central database; from its first central COMMIT until
  ``usage daemon status`` reports no lag. This is the whole production path: reading
  the outbox, one central transaction per chunk (COPY into ``events``, the host
  cursor), the local cursor; then, not part of the figure, the time until the
  forwarder has folded the events into the rollups;
- **ceiling**: psycopg ``COPY`` of the same rows (built beforehand by the writer's own
  ``copy_row``, not timed) into the same ``events`` table of another fresh central
  database, one transaction per chunk of the same size.

The order is ceiling, forward, ceiling, forward, ... (``--repeat``, default 2 pairs); the
verdict is the median ratio of each forward run to the mean of the ceilings around it.
Without ``--url`` it starts a throwaway cluster as the tests do (tests/support/postgres.py:
fsync and synchronous_commit off, which favours both sides alike).

    .venv/bin/python benchmarks/bench_forward.py                       # 1M events
    .venv/bin/python benchmarks/bench_forward.py --events 200000 --repeat 1   # quick
    .venv/bin/python benchmarks/bench_forward.py --url postgresql://me@db/postgres
    .venv/bin/python benchmarks/bench_forward.py --events 300000 --breakdown
                            # where the central time goes: seconds per statement

Target: forwarding >= 50% of the ceiling.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support.postgres

from uptake.client import DaemonClient, DaemonError
from uptake.protocol import Event, new_event_ids
from uptake_aggregator.daemon.forwarder import DEFAULT_CHUNK_EVENTS, DEFAULT_FOLD_ROWS
from uptake_aggregator.store.postgres.central import EVENT_COPY_COLUMNS, copy_row
from uptake_aggregator.store.postgres.connection import migrate
from uptake_aggregator.store.sqlite.outbox import SqliteOutbox
from uptake_aggregator.store.sqlite.readonly import connect_readonly
from uptake_aggregator.store.sqlite.storage import Storage

TARGET_RATIO = 0.5
FEATURES = [f"feature_{i:02d}" for i in range(40)]
INTEGRATIONS = ["slack", "jira", "github"]


def _backlog(count: int, seed: int = 7) -> Iterator[list[Event]]:
    """``count`` events in batches of 20k, time-ordered over the last 30 days.

    Users work in bursts, as the SDK records them: a login, then 5-40 feature events a
    few seconds apart, most inside an explicit session (``uptake.session()``), a fifth
    outside any; some with an integration prop; now and then a seats event.
    """
    rng = random.Random(seed)
    now = time.time_ns() // 1000
    start = now - 30 * 86_400_000_000
    # Bursts interleave: each new burst starts a little after the previous one.
    gap = (now - start - 3_600_000_000) * 20 // count
    made = 0
    clock = start
    pending: list[tuple[int, dict[str, Any]]] = []
    while made < count:
        user = rng.randrange(2000)
        account = f"acct{user % 200}"
        session = f"s{made}" if rng.random() < 0.8 else None
        ts = clock
        burst = [(ts, {"kind": "login", "user": f"u{user}", "account": account})]
        for _ in range(rng.randrange(5, 40)):
            ts += rng.randrange(1_000_000, 30_000_000)
            fields: dict[str, Any] = {
                "kind": "feature",
                "name": rng.choice(FEATURES),
                "user": f"u{user}",
                "account": account,
                "session": session,
                "source": "bench",
            }
            if rng.random() < 0.1:
                fields["props"] = {"integration": rng.choice(INTEGRATIONS), "plan": "pro"}
            burst.append((ts, fields))
        if rng.random() < 0.01:
            burst.append((ts + 1, {"kind": "seats", "account": account, "value": 50}))
        pending += burst
        made += len(burst)
        clock += rng.randrange(1, 2 * gap)
        if len(pending) >= 20_000 or made >= count:
            pending.sort(key=lambda item: item[0])
            keep = pending[: min(len(pending), count - (made - len(pending)))]
            stamps = [ts for ts, _ in keep]
            yield [
                Event(id=event_id, ts=ts, **fields)
                for event_id, (ts, fields) in zip(new_event_ids(stamps), keep, strict=True)
            ]
            pending = []


def build_outbox(db: Path, count: int) -> None:
    """Store the backlog through ``Storage.ingest`` (as the daemon would)."""

    async def run() -> None:
        storage = await Storage.open(db, synchronous="NORMAL")
        try:
            for batch in _backlog(count):
                await storage.ingest([batch])
        finally:
            await storage.close()

    anyio.run(run)


def _rows(db: Path, host_id: str) -> list[tuple[Any, ...]]:
    outbox = SqliteOutbox(connect_readonly(db))
    try:
        chunk = outbox.read_after(0, 10**9)
    finally:
        outbox.close()
    return [copy_row(row, host_id) for row in chunk]


def ceiling(url: str, rows: list[tuple[Any, ...]], chunk: int) -> float:
    """events/s of psycopg COPY of ``rows`` into ``events``, one transaction per chunk."""
    import psycopg

    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        for start in range(0, len(rows), chunk):
            copying = f"COPY events ({EVENT_COPY_COLUMNS}) FROM STDIN"
            with conn.transaction(), conn.cursor() as cur, cur.copy(copying) as copy:
                for row in rows[start : start + chunk]:
                    copy.write_row(row)
        elapsed = time.perf_counter() - started
    return len(rows) / elapsed


def forward(db: Path, url: str, events: int, chunk: int, workdir: Path) -> float:
    """events/s of a real daemon forwarding the backlog in ``db`` to ``url``."""
    sock = workdir / "d.sock"
    command = [
        sys.executable,
        "-m",
        "uptake_aggregator",
        "--foreground",
        "--quiet",
        "--no-adopt",
        "--socket",
        str(sock),
        "--db",
        str(db),
        "--log-file",
        str(workdir / "daemon.log"),
        "--forward-chunk",
        str(chunk),
    ]
    env = {**os.environ, "UPTAKE_FORWARD": url, "XDG_CACHE_HOME": str(workdir / "cache")}
    daemon = subprocess.Popen(command, env=env)
    try:
        first: tuple[float, int] | None = None
        while True:
            try:
                with DaemonClient(sock, timeout=5.0, client_name="bench") as client:
                    status = client.status()["forward"]
            except DaemonError:
                status = None
            now = time.perf_counter()
            if status is not None:
                if first is None and status["cursor"] > 0:
                    first = (now, status["cursor"])
                if status["cursor"] >= events and status["lag_events"] == 0:
                    break
                if status["last_error"]:
                    raise SystemExit(f"forwarding failed: {status['last_error']}")
            if daemon.poll() is not None:
                raise SystemExit(f"the daemon exited ({daemon.returncode})")
            time.sleep(0.05)
        assert first is not None
        rate = (events - first[1]) / (now - first[0])
        # The forwarder folds the centre's events into its rollups once caught up: the time until
        # the rollups hold the backlog too (not part of the target's figure).
        while status is None or status.get("folded_events", 0) < events:
            time.sleep(0.05)
            with DaemonClient(sock, timeout=5.0, client_name="bench") as client:
                status = client.status()["forward"]
        folded = time.perf_counter()
        print(
            f"          rollups current after {folded - first[0]:.1f} s in all"
            f" ({(events - first[1]) / (folded - first[0]):,.0f} events/s);"
            f" the fold took {folded - now:.1f} s"
        )
        return rate
    finally:
        daemon.terminate()
        daemon.wait(30)


def breakdown(db: Path, url: str, chunk: int) -> None:
    """Forward ``db`` in this process through ``CentralWriter``, then fold the events
    into the rollups; print seconds per statement."""
    import collections
    import contextlib

    import psycopg

    from uptake_aggregator.store.postgres.central import CentralWriter

    spent: collections.Counter[str] = collections.Counter()
    execute, copy = psycopg.Cursor.execute, psycopg.Cursor.copy

    def timed_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(query, str) and ";\n" in query and not args and not kwargs:
            # A script (the rollups): time each of its statements.
            for statement in query.split(";\n"):
                timed_execute(self, statement)
            return self
        started = time.perf_counter()
        try:
            return execute(self, query, *args, **kwargs)
        finally:
            spent[" ".join(str(query).split())[:60]] += time.perf_counter() - started

    @contextlib.contextmanager
    def timed_copy(self: Any, statement: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        started = time.perf_counter()
        with copy(self, statement, *args, **kwargs) as copying:
            yield copying
        spent[str(statement)[:60]] += time.perf_counter() - started

    psycopg.Cursor.execute = timed_execute  # type: ignore[method-assign]
    psycopg.Cursor.copy = timed_copy  # type: ignore[method-assign,assignment]
    outbox = SqliteOutbox(connect_readonly(db))
    writer = CentralWriter(url)
    cursor, reading, started = 0, 0.0, time.perf_counter()
    while True:
        read_at = time.perf_counter()
        rows = outbox.read_after(cursor, chunk)
        reading += time.perf_counter() - read_at
        if not rows:
            break
        cursor = writer.forward(outbox.host_id, rows).cursor
    forwarded = time.perf_counter() - started
    while writer.fold(DEFAULT_FOLD_ROWS)[1]:  # the rollups, as the forwarder folds them
        pass
    total = time.perf_counter() - started
    writer.close()
    outbox.close()
    psycopg.Cursor.execute, psycopg.Cursor.copy = execute, copy  # type: ignore[method-assign]
    central = total - reading
    print(
        f"in-process: {cursor / forwarded:,.0f} events/s forwarded, {cursor / total:,.0f}"
        f" with the fold; outbox reads {reading:.1f} s, central {central:.1f} s"
        f" (the fold {total - forwarded:.1f} s)"
    )
    for statement, seconds in spent.most_common(16):
        print(f"  {seconds:7.2f} s {seconds / central:5.0%}  {statement}")


def _size_mb(url: str) -> float:
    import psycopg

    with psycopg.connect(url) as conn:
        [(size,)] = conn.execute("SELECT pg_database_size(current_database())")
    return float(size) / 1e6


def _reset_cursor(db: Path) -> None:
    """Make the database an unforwarded backlog again (for the next forward run)."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE counters SET value = -1 WHERE name = 'forwarded'")


def _fresh_central(admin_url: str, name: str) -> str:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(admin_url, dbname=name)
    params = conninfo_to_dict(url)
    password = f":{params['password']}" if params.get("password") else ""
    url = (
        f"postgresql://{params.get('user', '')}{password}@{params.get('host', '')}:"
        f"{params.get('port', 5432)}/{name}"
    )
    migrate(url)
    return url


def main() -> int:
    """Run the benchmark; exit 0 when the target is met."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--chunk", type=int, default=DEFAULT_CHUNK_EVENTS, help="events per transaction"
    )
    parser.add_argument("--repeat", type=int, default=2, help="(ceiling, forward) pairs")
    parser.add_argument("--url", help="an existing server's admin URL (default: a throwaway)")
    parser.add_argument(
        "--breakdown", action="store_true", help="only time each central statement (in-process)"
    )
    args = parser.parse_args()
    cluster = None
    if args.url is None:
        from tests.support.postgres import PostgresCluster, find_pg_bin

        bin_dir = find_pg_bin()
        if bin_dir is None:
            raise SystemExit("no PostgreSQL installed: apt-get install postgresql, or --url")
        cluster = PostgresCluster(bin_dir).start()
        admin = cluster.url()
    else:
        admin = args.url
    try:
        with tempfile.TemporaryDirectory(prefix="fwd", dir="/tmp") as tmp:
            workdir = Path(tmp)
            db = workdir / "outbox.db"
            started = time.perf_counter()
            build_outbox(db, args.events)
            print(f"backlog: {args.events:,} events in {time.perf_counter() - started:.1f} s")
            outbox = SqliteOutbox(connect_readonly(db))
            host_id = outbox.host_id
            outbox.close()
            if args.breakdown:
                breakdown(db, _fresh_central(admin, "breakdown"), args.chunk)
                return 0
            rows = _rows(db, host_id)
            ceilings = [ceiling(_fresh_central(admin, "ceiling"), rows, args.chunk)]
            print(f"ceiling:  {ceilings[-1]:>9,.0f} events/s (psycopg COPY into events)")
            ratios = []
            rates = []
            for run in range(args.repeat):
                _reset_cursor(db)
                url = _fresh_central(admin, f"forward{run}")
                rates.append(forward(db, url, args.events, args.chunk, workdir))
                print(f"central database after it: {_size_mb(url):,.0f} MB")
                ceilings.append(ceiling(_fresh_central(admin, "ceiling"), rows, args.chunk))
                around = (ceilings[-2] + ceilings[-1]) / 2
                ratios.append(rates[-1] / around)
                print(f"forward:  {rates[-1]:>9,.0f} events/s ({ratios[-1]:.0%} of the ceiling)")
                print(f"ceiling:  {ceilings[-1]:>9,.0f} events/s")
    finally:
        if cluster is not None:
            cluster.destroy()
    ratio = statistics.median(ratios)
    print(
        f"median: forward {statistics.median(rates):,.0f} events/s, "
        f"{ratio:.0%} of the raw COPY ceiling ({statistics.median(ceilings):,.0f} events/s); "
        f"target >= {TARGET_RATIO:.0%}: {'met' if ratio >= TARGET_RATIO else 'NOT met'}"
    )
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
