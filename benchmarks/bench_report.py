"""Benchmark: `usage report --format json` over the full window vs DuckDB on the raw events.

Generates a realistic dataset (default 10M events: 10k users, 500 accounts, 60 features,
90 days; skewed account sizes, user activity levels and feature popularity; explicit and
implicit sessions, seats changes, integrations, releases), ingests it through
``Storage.ingest`` in large batches, then in one run times:

- ``usage report --format json`` for the full 90-day window (a subprocess, so Python
  start-up and imports are included), and ``build_report`` + JSON encoding in-process;
- DuckDB computing the same DAU series, per-feature (events, users, accounts) and
  per-account (active users) aggregates, and the engagement figures (lifecycle, power
  users, feature days per user, release impact, activation for ``CORE``, weekly active
  users per account) on the raw events (loaded into DuckDB from the
  same generated data beforehand, not timed).

The report process and DuckDB run in alternation (report, DuckDB, report, ...), so both
see the same state of this shared, noisy machine; the ratio is the median of the per-pair
ratios. It prints both and the ratios, then the report time at 1M and 100k events.
Generated databases are cached under benchmarks/results/ keyed by their parameters. The
sources are byte-compiled first, as an installed package would be (with
PYTHONDONTWRITEBYTECODE set, each `usage` run would otherwise recompile what changed).

    .venv/bin/pip install -e '.[test,bench]'
    .venv/bin/python benchmarks/bench_report.py                # 10M (+ 1M, 100k)
    .venv/bin/python benchmarks/bench_report.py --events 200000 --no-scaling   # quick
    .venv/bin/python benchmarks/bench_report.py --no-scaling --window 30  # last 30 days
    .venv/bin/python benchmarks/bench_report.py --results /tmp/bench --generate-only
"""

from __future__ import annotations

import argparse
import compileall
import csv
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio

from uptake.protocol import Event, ReportFilters, new_event_ids
from uptake_aggregator.metrics import build_report
from uptake_aggregator.store.sqlite.storage import Storage

#: Where generated databases are cached by default (``--results`` moves it).
RESULTS = Path(__file__).resolve().parent / "results"
DAY_US = 86_400_000_000
MINUTE_US = 60_000_000
START = dt.date(2026, 1, 5)
BATCH = 50_000
#: The core features both sides compute activation for.
CORE = ("feature_03", "feature_07")
INTEGRATIONS = ["slack", "jira", "github", "salesforce", "zendesk", "hubspot", "teams", "okta"]


@dataclass(frozen=True)
class Params:
    """Dataset shape; the cache key."""

    events: int
    users: int = 10_000
    accounts: int = 500
    features: int = 60
    days: int = 90
    seed: int = 7

    @property
    def key(self) -> str:
        return (
            f"e{self.events}_u{self.users}_a{self.accounts}_f{self.features}"
            f"_d{self.days}_s{self.seed}"
        )


def _rows(
    params: Params,
) -> Iterator[
    list[
        tuple[int, str, str | None, str, str | None, str | None, int | None, dict[str, str] | None]
    ]
]:
    """Yield one day of event tuples at a time, in time order, about ``params.events`` in all."""
    rng = random.Random(params.seed)
    account_ids = [f"acct{i:04d}" for i in range(params.accounts)]
    account_weights = [1 / (i + 1) ** 0.8 for i in range(params.accounts)]
    user_accounts = rng.choices(account_ids, weights=account_weights, k=params.users)
    levels = rng.choices([0.85, 0.5, 0.15, 0.02], weights=[20, 30, 40, 10], k=params.users)
    joins = [
        0 if rng.random() < 0.7 else rng.randrange(params.days * 2 // 3)
        for _ in range(params.users)
    ]
    feature_names = [f"feature_{i:02d}" for i in range(params.features)]
    feature_weights = [1 / (i + 1) ** 1.1 for i in range(params.features)]
    account_integrations = {a: rng.sample(INTEGRATIONS, k=rng.randrange(0, 4)) for a in account_ids}
    sizes: dict[str, int] = {}
    for account in user_accounts:
        sizes[account] = sizes.get(account, 0) + 1
    seat_changes = {
        a: (rng.randrange(params.days), max(1, round(sizes.get(a, 1) * rng.uniform(0.6, 1.6))))
        for a in account_ids
        if rng.random() < 0.2
    }
    releases = {params.days // 4: "2.1.0", params.days // 2: "2.2.0", 3 * params.days // 4: "3.0.0"}

    def weekday_factor(day: int) -> float:
        return 0.4 if (START + dt.timedelta(days=day)).weekday() >= 5 else 1.0

    expected = sum(
        levels[u] * weekday_factor(d)
        for d in range(params.days)
        for u in range(params.users)
        if d >= joins[u]
    )
    # Small datasets keep all 90 days: fewer active users per day, not fewer days.
    per_user_day = max(8.0, params.events / max(expected, 1.0))
    activity = min(1.0, params.events / max(expected * per_user_day, 1.0))
    for day in range(params.days):
        base = (START + dt.timedelta(days=day) - dt.date(1970, 1, 1)).days * DAY_US
        rows: list[
            tuple[
                int, str, str | None, str, str | None, str | None, int | None, dict[str, str] | None
            ]
        ] = []
        if day == 0:
            for account in account_ids:
                seats = max(1, round(sizes.get(account, 1) * rng.uniform(0.7, 1.3)))
                rows.append((base + 1, "seats", None, "", account, None, seats, None))
        for account, (change_day, seats) in seat_changes.items():
            if change_day == day:
                rows.append((base + 2, "seats", None, "", account, None, seats, None))
        if day in releases:
            rows.append((base + 3, "release", releases[day], "", None, None, None, None))
        factor = weekday_factor(day)
        for u in range(params.users):
            if day < joins[u] or rng.random() >= levels[u] * factor * activity:
                continue
            user = f"user{u:05d}"
            account = user_accounts[u]
            budget = max(2, int(rng.expovariate(1 / per_user_day)))
            ts = base + rng.randrange(6 * 60, 20 * 60) * MINUTE_US
            n_sessions = rng.choice([1, 1, 2, 3])
            per_session = max(2, budget // n_sessions)
            for s in range(n_sessions):
                explicit = rng.random() < 0.75
                session = f"{user}-{day}-{s}" if explicit else None
                start = ts
                if s == 0:
                    rows.append((ts, "login", None, user, account, session, None, None))
                    ts += rng.randrange(1, 30) * 1_000_000
                if explicit:
                    rows.append((ts, "session_start", None, user, account, session, None, None))
                for name in rng.choices(feature_names, weights=feature_weights, k=per_session - 2):
                    ts += rng.randrange(5, 240) * 1_000_000
                    props = None
                    integrations = account_integrations[account]
                    if integrations and rng.random() < 0.05:
                        props = {"integration": rng.choice(integrations)}
                    rows.append((ts, "feature", name, user, account, session, None, props))
                ts += rng.randrange(5, 120) * 1_000_000
                if explicit:
                    rows.append(
                        (
                            ts,
                            "session_end",
                            None,
                            user,
                            account,
                            session,
                            (ts - start) // 1000,
                            None,
                        )
                    )
                else:
                    rows.append((ts, "identify", None, user, account, None, None, None))
                ts += rng.randrange(35, 240) * MINUTE_US
        rows.sort(key=lambda row: row[0])
        # Every day is generated: the total lands within a few percent of params.events.
        yield rows


def _events(
    rows: list[
        tuple[int, str, str | None, str, str | None, str | None, int | None, dict[str, str] | None]
    ],
) -> list[Event]:
    ids = new_event_ids([row[0] for row in rows])
    return [
        Event(
            id=event_id,
            ts=ts,
            kind=kind,  # type: ignore[arg-type]
            name=name,
            user=user or None,
            account=account,
            session=session,
            value=value,
            props=props,  # type: ignore[arg-type]
            source="bench",
        )
        for event_id, (ts, kind, name, user, account, session, value, props) in zip(
            ids, rows, strict=True
        )
    ]


async def _migrate(db: Path) -> None:
    """Bring a cached database to the current schema (what the daemon does on start)."""
    storage = await Storage.open(db, synchronous="NORMAL")
    await storage.close()


def generate(params: Params, results: Path = RESULTS) -> tuple[Path, Path, int]:
    """Build (or reuse) the SQLite db and the DuckDB copy for ``params``; return paths, days.

    They are cached in ``results``.
    """
    results.mkdir(parents=True, exist_ok=True)
    db = results / f"report_{params.key}.db"
    duck = results / f"report_{params.key}.duckdb"
    done = results / f"report_{params.key}.done"
    if done.exists():
        anyio.run(_migrate, db)  # a cached database may predate the current schema
        return db, duck, int(done.read_text())
    for stale in (db, duck, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)
    csv_path = results / f"report_{params.key}.csv"
    started = time.perf_counter()
    days = 0

    async def ingest() -> int:
        storage = await Storage.open(db, synchronous="NORMAL")
        count = 0
        try:
            with csv_path.open("w", newline="") as handle:
                writer = csv.writer(handle)
                pending: list[Event] = []
                for rows in _rows(params):
                    writer.writerows(
                        (ts, kind, name, user, account, session)
                        for ts, kind, name, user, account, session, _, _ in rows
                    )
                    pending.extend(_events(rows))
                    while len(pending) >= BATCH:
                        await storage.ingest([pending[:BATCH]])
                        count += BATCH
                        del pending[:BATCH]
                    nonlocal days
                    days += 1
                    if days % 15 == 0:
                        print(f"  {params.key}: day {days}, {count:,} events", flush=True)
                if pending:
                    await storage.ingest([pending])
                    count += len(pending)
        finally:
            await storage.close()
        return count

    count = anyio.run(ingest)
    print(f"  generated {count:,} events over {days} days in {time.perf_counter() - started:.0f}s")
    import duckdb

    con = duckdb.connect(str(duck))
    con.execute(
        "CREATE TABLE events AS SELECT * FROM read_csv(?, header=false, columns={"
        "'ts': 'BIGINT', 'kind': 'VARCHAR', 'name': 'VARCHAR', 'user': 'VARCHAR', "
        "'account': 'VARCHAR', 'session': 'VARCHAR'})",
        [str(csv_path)],
    )
    con.execute("UPDATE events SET user = NULL WHERE user = ''")
    con.close()
    csv_path.unlink()
    done.write_text(str(days))
    return db, duck, days


#: A report window as ISO dates: (since, until).
Span = tuple[str, str]


def _window(days: int, last: int | None = None) -> Span:
    """The report window: the ``last`` days of the ``days`` generated (None: all of them)."""
    until = START + dt.timedelta(days=days)
    since = START if last is None else until - dt.timedelta(days=last)
    return since.isoformat(), until.isoformat()


def _cli_runner(db: Path, span: Span) -> Callable[[], float]:
    """A function timing one `usage report --format json` process (wall seconds)."""
    since, until = span
    usage = Path(sys.executable).with_name("usage")
    command = [
        str(usage),
        "report",
        "--format",
        "json",
        "--db",
        str(db),
        "--socket",
        str(db.parent / "no-daemon.sock"),
        "--since",
        since,
        "--until",
        until,
        "--core",
        ",".join(CORE),
    ]

    def run() -> float:
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, check=False)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"usage report failed: {done.stderr.decode()[-2000:]}")
        return elapsed

    return run


def time_cli(db: Path, span: Span, runs: int) -> float:
    """Median wall time of `usage report --format json` (a fresh process each run)."""
    run = _cli_runner(db, span)
    return statistics.median(run() for _ in range(runs))


def time_engine(db: Path, span: Span, runs: int) -> tuple[float, dict[str, object]]:
    """Median in-process time of build_report + JSON encoding (parallel, as the CLI runs it)."""
    since, until = span
    filters = ReportFilters(since=since, until=until, core=list(CORE))
    times = []
    report: dict[str, object] = {}
    for _ in range(runs):
        started = time.perf_counter()
        report = build_report(db, filters, parallel=True)
        json.dumps(report)
        times.append(time.perf_counter() - started)
    return statistics.median(times), report


def _duckdb_runner(duck: Path, span: Span) -> tuple[Callable[[], float], Callable[[], None]]:
    """A function timing DuckDB's DAU, per-feature and per-account aggregates, and a closer.

    The connection stays open between runs (warm), as a query engine serving reports.
    """
    import duckdb

    since, until = span
    lo = (dt.date.fromisoformat(since) - dt.date(1970, 1, 1)).days * DAY_US
    hi = (dt.date.fromisoformat(until) - dt.date(1970, 1, 1)).days * DAY_US
    con = duckdb.connect(str(duck), read_only=True)
    queries = [
        "SELECT ts // 86400000000 AS day, count(DISTINCT user) FROM events "
        "WHERE ts >= $lo AND ts < $hi AND user IS NOT NULL GROUP BY day ORDER BY day",
        "SELECT name, count(*), count(DISTINCT user), count(DISTINCT account) FROM events "
        "WHERE ts >= $lo AND ts < $hi AND kind = 'feature' GROUP BY name",
        "SELECT account, count(DISTINCT user) FROM events "
        "WHERE ts >= $lo AND ts < $hi AND account IS NOT NULL GROUP BY account",
    ]

    day = DAY_US
    first_monday = lo // day - (lo // day + 3) % 7
    until_day = hi // day
    # The engagement figures (docs/metrics.md), like for like: lifecycle, power users,
    # feature days per user, activation, weekly active users per account; release impact
    # per release below.
    weeks = (
        "WITH ue AS (SELECT user, ts // 86400000000 AS day FROM events"
        " WHERE user IS NOT NULL AND ts < $hi),"
        " firsts AS (SELECT user, min(day) - (min(day) + 3) % 7 AS first_monday FROM ue"
        " GROUP BY user),"
        " wk AS (SELECT DISTINCT user, day - (day + 3) % 7 AS monday FROM ue"
        " WHERE day >= $m0 - 7)"
    )
    engagement = [
        weeks + " SELECT a.monday,"
        " count(*) FILTER (WHERE f.first_monday = a.monday),"
        " count(*) FILTER (WHERE f.first_monday <> a.monday AND p.user IS NOT NULL),"
        " count(*) FILTER (WHERE f.first_monday <> a.monday AND p.user IS NULL)"
        " FROM wk a JOIN firsts f USING (user)"
        " LEFT JOIN wk p ON p.user = a.user AND p.monday = a.monday - 7"
        " WHERE a.monday >= $m0 GROUP BY a.monday ORDER BY a.monday",
        weeks + " SELECT p.monday + 7, count(*) FROM wk p"
        " LEFT JOIN wk a ON a.user = p.user AND a.monday = p.monday + 7"
        " WHERE a.user IS NULL AND p.monday + 7 >= $m0 AND p.monday + 7 < $until_day"
        " GROUP BY 1",
        "SELECT n, count(*) FROM (SELECT user, count(DISTINCT ts // 86400000000) AS n"
        " FROM events WHERE user IS NOT NULL AND ts >= $hi - 7 * 86400000000 AND ts < $hi"
        " GROUP BY user) GROUP BY n",
        "SELECT n, count(*) FROM (SELECT user, count(DISTINCT ts // 86400000000) AS n"
        " FROM events WHERE user IS NOT NULL AND ts >= $hi - 30 * 86400000000 AND ts < $hi"
        " GROUP BY user) GROUP BY n",
        "SELECT name, count(DISTINCT (user, ts // 86400000000)) / count(DISTINCT user)"
        " FROM events WHERE kind = 'feature' AND user IS NOT NULL"
        " AND ts >= $lo AND ts < $hi GROUP BY name",
        "WITH f AS (SELECT user, min(ts) AS first FROM events WHERE user IS NOT NULL"
        " AND ts < $hi GROUP BY user HAVING min(ts) >= $lo),"
        " c AS (SELECT user, min(ts) AS core FROM events WHERE kind = 'feature'"
        f" AND name IN {CORE!r} AND ts < $hi GROUP BY user)"
        " SELECT f.user, f.first, c.core FROM f LEFT JOIN c USING (user)",
        "SELECT account, ts // 86400000000 - (ts // 86400000000 + 3) % 7 AS monday,"
        " count(DISTINCT user) FROM events WHERE account IS NOT NULL AND user IS NOT NULL"
        " AND ts >= ($m0 - 0) * 86400000000 AND ts < $hi GROUP BY account, monday",
    ]
    impact = (
        "SELECT CASE WHEN kind = 'feature' THEN name END AS feature,"
        " ts // 86400000000 AS day, count(DISTINCT user) FROM events"
        " WHERE user IS NOT NULL AND ts >= $b0 AND ts < $a1"
        " GROUP BY GROUPING SETS ((feature, day), (day))"
    )
    params = {"lo": lo, "hi": hi}
    weekly = {**params, "m0": first_monday, "until_day": until_day}

    def run() -> float:
        started = time.perf_counter()
        for query in queries:
            con.execute(query, params).fetchall()
        for query in engagement:
            named = {k: v for k, v in weekly.items() if f"${k}" in query}
            con.execute(query, named).fetchall()
        releases = con.execute(
            "SELECT ts FROM events WHERE kind = 'release' AND ts >= $lo AND ts < $hi", params
        ).fetchall()
        for (ts,) in releases:
            release_day = ts // day
            after = max(min(release_day + 7, until_day) - release_day, 1)
            span = {"b0": (release_day - after) * day, "a1": (release_day + after) * day}
            con.execute(impact, span).fetchall()
        return time.perf_counter() - started

    return run, con.close


def paired_runs(db: Path, duck: Path, span: Span, runs: int) -> tuple[list[float], list[float]]:
    """Report-process and DuckDB times (seconds), run in alternation after a warm-up each."""
    cli_run = _cli_runner(db, span)
    duck_run, close = _duckdb_runner(duck, span)
    try:
        cli_run()
        duck_run()
        cli: list[float] = []
        duck_times: list[float] = []
        for _ in range(runs):
            cli.append(cli_run())
            duck_times.append(duck_run())
    finally:
        close()
    return cli, duck_times


def _stored_events(db: Path) -> int:
    import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT value FROM counters WHERE name = 'events'").fetchone()[0])
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-scaling", action="store_true", help="skip the 1M/100k runs")
    parser.add_argument(
        "--window",
        type=int,
        default=None,
        metavar="DAYS",
        help="report (and DuckDB) over the last DAYS days of the data only (default: all)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="cache generated databases here (default: benchmarks/results)",
    )
    parser.add_argument(
        "--generate-only", action="store_true", help="build (or migrate) the dataset and stop"
    )
    args = parser.parse_args()
    results = args.results or RESULTS
    print(f"report benchmark: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    root = Path(__file__).resolve().parent.parent
    for package in ("sdk", "aggregator", "cli"):
        compileall.compile_dir(root / package, quiet=1)
    params = Params(args.events)
    db, duck, days = generate(params, results)
    if args.generate_only:
        return
    span = _window(days, args.window)
    cli_times, duck_times = paired_runs(db, duck, span, args.runs)
    cli, duck_s = statistics.median(cli_times), statistics.median(duck_times)
    ratios = [c / d for c, d in zip(cli_times, duck_times, strict=True)]
    engine, report = time_engine(db, span, args.runs)
    product = report["product"]
    assert isinstance(product, dict)
    stored = _stored_events(db)
    print(
        f"\n{stored:,} events, window {span[0]} to {span[1]}"
        f" ({args.window or days} of {days} days) "
        f"({product['known_users']} users, {len(report['accounts'])} accounts, "  # type: ignore[arg-type]
        f"{len(report['features'])} features, {product['sessions']:,} sessions)"  # type: ignore[arg-type]
    )
    print(f"  usage report --format json (process): {cli * 1000:8.0f} ms")
    print(f"  build_report + json (in process):     {engine * 1000:8.0f} ms")
    print(f"  DuckDB §6 + engagement figures:       {duck_s * 1000:8.0f} ms")
    print(
        f"  ratio report/DuckDB: process {statistics.median(ratios):.2f}x (median of"
        f" {len(ratios)} alternating pairs, {min(ratios):.2f}-{max(ratios):.2f}x),"
        f" in-process {engine / duck_s:.2f}x  (target <= 1.0x)"
    )
    if not args.no_scaling:
        print("\nscaling (in-process build_report + json, and the CLI process):")
        for events in (100_000, 1_000_000):
            small_db, _, small_days = generate(Params(events), results)
            small_span = _window(small_days, args.window)
            small_engine, _ = time_engine(small_db, small_span, args.runs)
            small_cli = time_cli(small_db, small_span, args.runs)
            small_events = _stored_events(small_db)
            print(
                f"  {small_events:>10,} events: {small_engine * 1000:8.0f} ms in process, "
                f"{small_cli * 1000:8.0f} ms process"
            )
        print(
            f"  {stored:>10,} events: {engine * 1000:8.0f} ms in process, "
            f"{cli * 1000:8.0f} ms process"
        )


if __name__ == "__main__":
    main()
