"""Benchmark: `usage report --store URL` (the central PostgreSQL) vs the SQLite report and DuckDB.

The dataset is bench_report.py's (default 10M events: 10k users, 500 accounts, 60
features, 90 days), generated into SQLite and DuckDB the same way (and cached there).
The SQLite database's events are then forwarded into a central store by three hosts
(``CentralWriter``, 50k-event chunks, round robin), as the daemons would, so the central
rollups are built by the forwarding path itself. In one run, in alternation (central,
SQLite, DuckDB, central, ...) so all three see the same state of this shared machine:

- ``usage report --format json --store URL`` for the full window (a subprocess);
- ``usage report --format json --db PATH`` (a subprocess) on the SQLite database;
- DuckDB computing the same figures on the raw events (bench_report.py's queries).

It prints the medians and the median per-round ratios (target: central <= 2x DuckDB),
and checks that the two reports are equal. Without ``--store``, a throwaway cluster is
kept under benchmarks/results/pg/ (tests/support/postgres.py, durability off, 1 GB of
shared buffers), so a second run reuses the loaded store.

    .venv/bin/pip install -e '.[test,bench]'
    .venv/bin/python benchmarks/bench_store_report.py                    # 10M events
    .venv/bin/python benchmarks/bench_store_report.py --events 1000000   # quicker
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import bench_report
from bench_report import CORE, RESULTS, Params, generate

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 50_000
HOSTS = 3
#: The benchmark cluster's settings: room for the rollups in memory, parallel scans off
#: (two shared cores), durability off as in the tests.
SETTINGS = (
    "shared_buffers = 1GB\nwork_mem = 64MB\nmaintenance_work_mem = 256MB\n"
    "max_parallel_workers_per_gather = 0\nmax_wal_size = 4GB\ncheckpoint_timeout = 30min\n"
)


def _cluster_url(key: str) -> tuple[str, Callable[[], None]]:
    """A URL of database ``key`` on the kept benchmark cluster, and its stopper."""
    sys.path.insert(0, str(ROOT))
    from tests.support.postgres import PostgresCluster, find_pg_bin

    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL is not installed: apt-get install postgresql")
    cluster = PostgresCluster(bin_dir, root=RESULTS / "pg", settings=SETTINGS)
    stop = cluster.stop
    if cluster.server_running():  # started by an earlier run or by hand: left running
        stop = lambda: None  # noqa: E731
    else:
        cluster.start()
    import psycopg

    with psycopg.connect(cluster.socket_url(), autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (key,)).fetchone()
        if found is None:
            conn.execute(f'CREATE DATABASE "{key}"')
    return cluster.url(key), stop


def load_central(url: str, db: Path) -> float:
    """Forward every event of ``db`` into the store at ``url`` unless it holds them; seconds.

    Events go oldest first (the SQLite export order is by id, which is time-ordered),
    chunk k by host k mod HOSTS, each host with its own sequence.
    """
    from uptake_aggregator.store import open_store
    from uptake_aggregator.store.postgres.central import CentralWriter
    from uptake_aggregator.store.postgres.connection import migrate
    from uptake_aggregator.store.rows import OutboxRow, outbox_row

    migrate(url)
    source = open_store(db)
    stored = source.events_stored()
    central = open_store(url)
    if central.events_stored() == stored:
        return 0.0
    if central.events_stored():
        raise SystemExit(f"{url}: a partial load; drop the database and run again")
    writer = CentralWriter(url)
    started = time.perf_counter()
    sequences = [0] * HOSTS
    chunk: list[OutboxRow] = []
    sent = 0
    try:
        for event in source.read_events(None, None):
            host = (sent // CHUNK) % HOSTS
            sequences[host] += 1
            chunk.append(outbox_row(sequences[host], event))
            sent += 1
            if len(chunk) == CHUNK:
                writer.forward(f"host{host}", chunk)
                chunk = []
                if sent % 1_000_000 == 0:
                    rate = sent / (time.perf_counter() - started)
                    print(f"  forwarded {sent:,} events ({rate:,.0f}/s)", flush=True)
        if chunk:
            writer.forward(f"host{(sent - 1) // CHUNK % HOSTS}", chunk)
    finally:
        writer.close()
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


def _report_runner(location_args: list[str], days: int) -> tuple[Callable[[], float], list[str]]:
    since, until = bench_report._window(days)
    usage = Path(sys.executable).with_name("usage")
    command = [
        str(usage),
        "report",
        "--format",
        "json",
        *location_args,
        "--since",
        since,
        "--until",
        until,
        "--core",
        ",".join(CORE),
    ]
    outputs: list[str] = []

    def run() -> float:
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, check=False)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"usage report failed: {done.stderr.decode()[-2000:]}")
        outputs[:] = [done.stdout.decode()]
        return elapsed

    return run, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--store", help="a central store URL (default: the kept cluster)")
    args = parser.parse_args()
    print(f"central report benchmark: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    for package in ("sdk", "aggregator", "cli"):
        compileall.compile_dir(ROOT / package, quiet=1)
    params = Params(args.events)
    db, duck, days = generate(params)
    stop: Callable[[], None] = lambda: None  # noqa: E731
    url = args.store
    if url is None:
        url, stop = _cluster_url(f"report_{params.key}")
    try:
        loaded = load_central(url, db)
        if loaded:
            print(f"  loaded the central store in {loaded:.0f}s")
        central_run, central_out = _report_runner(["--store", url], days)
        sqlite_run, sqlite_out = _report_runner(
            ["--db", str(db), "--socket", str(RESULTS / "no-daemon.sock")], days
        )
        duck_run, close = bench_report._duckdb_runner(duck, days)
        try:
            central_run(), sqlite_run(), duck_run()  # warm-up, each
            rounds = [(central_run(), sqlite_run(), duck_run()) for _ in range(args.runs)]
        finally:
            close()
    finally:
        stop()
    same = json.loads(central_out[0]) == json.loads(sqlite_out[0])
    central, sqlite, duck_s = (statistics.median(r[i] for r in rounds) for i in range(3))
    to_duck = [c / d for c, _, d in rounds]
    to_sqlite = [c / s for c, s, _ in rounds]
    print(f"\n{args.events:,} events (requested), full window {days} days, {args.runs} rounds")
    print(f"  usage report --store (central, process): {central * 1000:8.0f} ms")
    print(f"  usage report --db (SQLite, process):     {sqlite * 1000:8.0f} ms")
    print(f"  DuckDB on the raw events:                {duck_s * 1000:8.0f} ms")
    print(
        f"  central/DuckDB {statistics.median(to_duck):.2f}x"
        f" ({min(to_duck):.2f}-{max(to_duck):.2f}x, target <= 2.0x);"
        f" central/SQLite {statistics.median(to_sqlite):.2f}x"
        f" ({min(to_sqlite):.2f}-{max(to_sqlite):.2f}x)"
    )
    print(f"  the central report equals the SQLite report: {same}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
