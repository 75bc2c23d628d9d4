"""End-to-end ingest benchmark: SDK clients -> daemon -> SQLite, against the raw SQLite ceiling.

Starts a real daemon (``python -m uptake_aggregator --foreground``) on a tmp socket and
database, then N client processes (default 4) that track realistic events through the real
SDK (``uptake.identify`` / ``uptake.session`` / ``uptake.track``: users with bursts of
feature events inside sessions) until the target (default 2M) events are acknowledged.
Each client draws its random sessions before the start signal, so that the timed part
is the SDK calls (and their loop); each reports its CPU after the start signal.
It checks the count in the database, prints events/s, then in the same run measures the raw
ceiling: stdlib ``sqlite3`` ``executemany`` of the very same rows, 1000 per transaction,
into the same ``events`` table (DDL from ``uptake_aggregator.store.sqlite.schema``), same
pragmas (WAL, synchronous=FULL). It prints the ratio and the daemon's RSS at the end, and two upper
bounds from the run's own costs: the events/s the cores could carry at its CPU per event
(daemon plus clients after the start signal), and the events/s of a writer that never
waited for work (events stored / the writer's busy time).

Dedup and ack-after-commit are on: the daemon runs exactly as in production.

    .venv/bin/python benchmarks/bench_ingest.py                   # 4 clients, 2M events
    .venv/bin/python benchmarks/bench_ingest.py --clients 8 --events 500000
    .venv/bin/python benchmarks/bench_ingest.py --transport protocol   # pre-encoded frames:
                                                    # the daemon's own capacity, no SDK cost
    .venv/bin/python benchmarks/bench_ingest.py --profile out.svg      # py-spy the daemon
                                                    # (pip install py-spy; .txt: raw stacks)

Targets: >= 250k events/s end to end and >= 50% of the raw ceiling.

The machine is shared and its speed drifts by up to 2x within minutes, so by default the
whole run (daemon, clients, ceiling) is repeated three times (``--repeat``) and the
verdict uses the medians: events/s, and the ratio of each run to its own ceiling.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import re
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATE = 250_000
TARGET_RATIO = 0.5
FEATURES = [f"feature_{i:02d}" for i in range(60)]
INTEGRATIONS = ["slack", "jira", "github", "teams"]


# --- client processes ----------------------------------------------------------------


def _sessions(seed: int, users: int, accounts: int):  # type: ignore[no-untyped-def]
    """Yield (user, account, features of one session's burst) forever, realistically skewed.

    A few users are heavy (Zipf-like), each account has favourite features, and bursts
    vary from a couple of clicks to long working sessions.
    """
    rng = random.Random(seed)
    weights = [1.0 / (rank + 1) ** 0.8 for rank in range(users)]
    user_ids = [f"user-{seed}-{i}" for i in range(users)]
    account_of = {user: f"acct-{rng.randrange(accounts)}" for user in user_ids}
    favourites = {account: rng.sample(FEATURES, 8) for account in set(account_of.values())}
    while True:
        for user in rng.choices(user_ids, weights, k=256):
            account = account_of[user]
            burst = max(1, int(rng.expovariate(1 / 12)))
            liked = favourites[account]
            features = [
                liked[int(rng.expovariate(0.6)) % len(liked)]
                if rng.random() < 0.85
                else rng.choice(FEATURES)
                for _ in range(burst)
            ]
            yield user, account, features


def _session_plan(seed: int, quota: int) -> list[tuple[str, str, tuple[str, ...]]]:
    """The first sessions of ``_sessions(seed, ...)``: ``quota`` events in all.

    Made before the start signal so that the timed loop is only SDK calls: generating the
    random stream is the benchmark's cost, not the SDK's. The same seeds and distribution
    as before, the same sessions in the same order (the last one cut to fit the quota).
    Tuples of str, and a collection once made, so the garbage collector stops tracking
    them: the plan must not make the clients' collections more expensive than without it.
    """
    sessions = _sessions(seed, users=500, accounts=40)
    plan: list[tuple[str, str, tuple[str, ...]]] = []
    produced = 0
    while produced < quota:
        user, account, features = next(sessions)
        features = features[: max(0, quota - produced - 2)]
        plan.append((user, account, tuple(features)))
        produced += len(features) + 2
    gc.collect()
    return plan


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_sdk_client(socket_path: str, quota: int, seed: int, ready: str, go: str) -> None:
    """Track ``quota`` events through the SDK, then flush; print what was acknowledged.

    The sessions (user, account, features) are drawn before the start signal (see
    ``_session_plan``), so what runs after it is the SDK calls and the loop around them.
    ``cpu_after_go`` is this process's CPU from the start signal to the end (the summary's
    client figure also counts interpreter start-up, imports and drawing the plan).
    """
    import uptake

    uptake.configure(
        app=f"bench-{seed}",
        socket=socket_path,
        max_batch=1000,
        max_queue=400_000,
        flush_interval=0.05,
        spool=False,
    )
    plan = _session_plan(seed, quota)
    Path(ready).touch()
    while not os.path.exists(go):
        time.sleep(0.001)
    cpu_at_go = _process_cpu()
    produced = 0
    for checks, (user, account, features) in enumerate(plan, 1):
        uptake.identify(user=user, account=account)
        with uptake.session():
            for index, feature in enumerate(features):
                if index % 10 == 3:
                    uptake.track(feature, integration=INTEGRATIONS[index % 4])
                else:
                    uptake.track(feature)
        produced += len(features) + 2
        if checks % 32 == 0:
            # Stay under the SDK's bounded buffer instead of dropping (it drops when full).
            while uptake.stats().queued > 200_000:
                time.sleep(0.002)
    flushed = uptake.flush(timeout=600)
    stats = uptake.stats()
    uptake.shutdown(timeout=60)
    cpu = _process_cpu() - cpu_at_go
    print(
        f"produced={produced} sent={stats.sent} dropped={stats.dropped} "
        f"rejected={stats.rejected} spooled={stats.spooled} flushed={flushed} "
        f"cpu_after_go={cpu:.2f}s ({cpu * 1e6 / max(produced, 1):.2f} us/event)",
        flush=True,
    )


def run_protocol_client(socket_path: str, quota: int, seed: int, ready: str, go: str) -> None:
    """Without the SDK: pre-encode the same kind of events as Batch frames, then send them.

    Building and encoding happen before the start signal, so this measures what the
    daemon can take when clients cost nothing (its own capacity).
    """
    from uptake.protocol import (
        PROTOCOL_VERSION,
        Batch,
        Event,
        FrameBuffer,
        Hello,
        encode_frame,
        new_event_ids,
        new_session_id,
    )

    sessions = _sessions(seed, users=500, accounts=40)
    source = f"bench-{seed}"
    events: list[Event] = []
    while len(events) < quota:
        user, account, features = next(sessions)
        features = features[: max(0, quota - len(events) - 2)]
        now = time.time_ns() // 1000
        session = new_session_id(now * 1000)  # as the SDK makes them
        stamps = [now + i for i in range(len(features) + 2)]
        ids = new_event_ids(stamps)
        common = {"user": user, "account": account, "session": session, "source": source}
        events.append(Event(id=ids[0], ts=stamps[0], kind="session_start", **common))
        events += [
            Event(
                id=ids[i + 1],
                ts=stamps[i + 1],
                kind="feature",
                name=feature,
                props={"integration": INTEGRATIONS[i % 4]} if i % 10 == 3 else None,
                **common,
            )
            for i, feature in enumerate(features)
        ]
        events.append(
            Event(id=ids[-1], ts=stamps[-1], kind="session_end", value=len(features), **common)
        )
    batches = [
        encode_frame(Batch(seq=seq, events=events[start : start + 1000]))
        for seq, start in enumerate(range(0, len(events), 1000))
    ]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(socket_path)
    frames = FrameBuffer()
    sock.sendall(encode_frame(Hello(protocol=PROTOCOL_VERSION, client="bench")))
    while not frames.feed(sock.recv(65536)):
        pass
    Path(ready).touch()
    while not os.path.exists(go):
        time.sleep(0.001)
    cpu_at_go = _process_cpu()
    in_flight = 0
    for frame in batches:
        sock.sendall(frame)
        in_flight += 1
        while in_flight >= 32:  # the same window as the SDK's worker (32 batches)
            in_flight -= len(frames.feed(sock.recv(65536)))
    while in_flight:
        in_flight -= len(frames.feed(sock.recv(65536)))
    sock.close()
    cpu = _process_cpu() - cpu_at_go
    print(
        f"produced={len(events)} sent={len(events)} dropped=0 rejected=0 spooled=0 "
        f"flushed=True cpu_after_go={cpu:.2f}s ({cpu * 1e6 / len(events):.2f} us/event)",
        flush=True,
    )


# --- the benchmark -------------------------------------------------------------------


def _rss_kib(pid: int) -> tuple[int, int]:
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def _stat_seconds(path: str) -> float:
    """User + system CPU seconds from a /proc ``stat`` file (a process's or a thread's)."""
    with open(path) as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    return _stat_seconds(f"/proc/{pid}/stat")


def _thread_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of the daemon's main thread (the event loop) and of its other threads."""
    main = other = 0.0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            seconds = _stat_seconds(f"/proc/{pid}/task/{tid}/stat")
        except FileNotFoundError:
            continue  # a worker thread that just ended
        if int(tid) == pid:
            main += seconds
        else:
            other += seconds
    return main, other


def _events_stored(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        conn.close()


def _raw_ceiling(source_db: Path, workdir: Path) -> tuple[float, int]:
    """events/s of stdlib sqlite3 inserting the same rows, 1000 per transaction."""
    from uptake_aggregator.store.sqlite.schema import MIGRATIONS

    events_ddl = next(
        sql for sql in MIGRATIONS[0] if sql.lstrip().startswith("CREATE TABLE events")
    )
    source = sqlite3.connect(f"file:{source_db}?mode=ro", uri=True)
    rows = source.execute(
        "SELECT id, ts, kind, name, user, account, session, value, props, source"
        " FROM events ORDER BY id"
    ).fetchall()
    source.close()
    target_db = workdir / "ceiling.db"
    conn = sqlite3.connect(target_db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(events_ddl)
    insert = "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    started = time.perf_counter()
    for start in range(0, len(rows), 1000):
        conn.execute("BEGIN")
        conn.executemany(insert, rows[start : start + 1000])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return len(rows) / elapsed, len(rows)


def _sdk_available() -> bool:
    try:
        import uptake
    except ImportError:
        return False
    return all(hasattr(uptake, name) for name in ("configure", "track", "flush", "shutdown"))


def _repeat(args: argparse.Namespace) -> int:
    """Run this benchmark ``args.repeat`` times in fresh processes; print the medians."""
    times = args.repeat
    arguments = ["--clients", str(args.clients), "--events", str(args.events)]
    if args.transport:
        arguments += ["--transport", args.transport]
    if args.profile:
        arguments += ["--profile", args.profile]
    if args.keep:
        arguments.append("--keep")
    rates: list[float] = []
    ratios: list[float] = []
    for run in range(1, times + 1):
        print(f"--- run {run} of {times}", flush=True)
        done = subprocess.run(
            [sys.executable, __file__, *arguments, "--repeat", "1"],
            capture_output=True,
            text=True,
            check=False,
        )
        print(done.stdout, end="", flush=True)
        rate = re.search(r"end to end:\s+([\d,]+) events/s", done.stdout)
        ceiling = re.search(r"raw ceiling:\s+([\d,]+) events/s", done.stdout)
        if done.returncode != 0 or rate is None or ceiling is None:
            print(done.stderr[-2000:], file=sys.stderr)
            return done.returncode or 1
        rates.append(float(rate.group(1).replace(",", "")))
        ratios.append(rates[-1] / float(ceiling.group(1).replace(",", "")))
    rate, ratio = statistics.median(rates), statistics.median(ratios)
    print(
        f"=== median of {times} runs: {rate:,.0f} events/s ({min(rates):,.0f}-{max(rates):,.0f}),"
        f" {ratio:.0%} of each run's own ceiling ({min(ratios):.0%}-{max(ratios):.0%})"
    )
    ok = rate >= TARGET_RATE and ratio >= TARGET_RATIO
    print(
        f"targets (medians): >= {TARGET_RATE:,} events/s and >= {TARGET_RATIO:.0%} of the "
        f"ceiling: {'met' if ok else 'NOT met'}"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--transport", choices=["sdk", "protocol"], default=None)
    parser.add_argument("--profile", metavar="FILE", help="record the daemon with py-spy")
    parser.add_argument("--keep", action="store_true", help="keep the tmp dir (db, log)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="whole runs, each with its own ceiling (median)"
    )
    parser.add_argument("--client", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeat > 1 and not args.client:
        return _repeat(args)

    if args.client:
        transport, socket_path, quota, seed, ready, go = args.client
        runner = run_sdk_client if transport == "sdk" else run_protocol_client
        runner(socket_path, int(quota), int(seed), ready, go)
        return 0

    transport = args.transport or ("sdk" if _sdk_available() else "protocol")
    if transport == "sdk" and not _sdk_available():
        print("the SDK (uptake.configure/track/flush) is not importable", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="upbench", dir="/tmp"))
    socket_path, db = workdir / "d.sock", workdir / "bench.db"
    env = dict(os.environ, UPTAKE_SPOOL_DIR=str(workdir / "spool"))
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uptake_aggregator",
            "--foreground",
            "--quiet",
            "--socket",
            str(socket_path),
            "--db",
            str(db),
            "--log-file",
            str(workdir / "d.log"),
        ],
        env=env,
    )
    profiler = None
    clients: list[subprocess.Popen[str]] = []
    try:
        while not socket_path.exists():
            if daemon.poll() is not None:
                raise SystemExit("the daemon did not start; see " + str(workdir / "d.log"))
            time.sleep(0.02)
        via = (
            "the real SDK (uptake.track)"
            if transport == "sdk"
            else "pre-encoded Batch frames (no SDK: the daemon's own capacity)"
        )
        print(
            f"ingest: {args.events:,} events from {args.clients} client processes via {via}; "
            f"daemon pid {daemon.pid}, {os.cpu_count()} cores"
        )
        go = workdir / "go"
        quotas = [args.events // args.clients] * args.clients
        quotas[0] += args.events - sum(quotas)
        for index, quota in enumerate(quotas):
            ready = workdir / f"ready{index}"
            clients.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--client",
                        transport,
                        str(socket_path),
                        str(quota),
                        str(index + 1),
                        str(ready),
                        str(go),
                    ],
                    env=env,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        while not all((workdir / f"ready{i}").exists() for i in range(args.clients)):
            time.sleep(0.01)
        bin_dir = os.path.dirname(sys.executable)
        py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=bin_dir)
        if args.profile and py_spy is None:
            print("--profile needs py-spy (pip install py-spy); not profiling")
        elif args.profile:
            profiler = subprocess.Popen(
                [
                    py_spy,
                    "record",
                    "-o",
                    args.profile,
                    "--pid",
                    str(daemon.pid),
                    "--rate",
                    "200",
                    "--nonblocking",
                    "--threads",
                    "--format",
                    "flamegraph" if args.profile.endswith(".svg") else "raw",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        daemon_cpu_before = _cpu_seconds(daemon.pid)
        threads_before = _thread_cpu(daemon.pid)
        started = time.perf_counter()
        go.touch()
        outputs = [client.communicate()[0] for client in clients]
        elapsed = time.perf_counter() - started
        daemon_cpu = _cpu_seconds(daemon.pid) - daemon_cpu_before
        loop_cpu, other_cpu = (
            after - before
            for after, before in zip(_thread_cpu(daemon.pid), threads_before, strict=True)
        )
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        clients_cpu = (children.ru_utime + children.ru_stime) - (
            children_before.ru_utime + children_before.ru_stime
        )
        rss, peak = _rss_kib(daemon.pid)
        from uptake.client import DaemonClient

        with DaemonClient(socket_path) as status_client:
            status = status_client.status()
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            profiler.wait()
        stored = _events_stored(db)
        for index, output in enumerate(outputs):
            print(f"  client {index}: {output.strip()}")
        rate = stored / elapsed
        print(f"stored {stored:,} events (expected {args.events:,}) in {elapsed:.2f} s")
        if stored != args.events:
            print("  MISMATCH: not every event was stored exactly once", file=sys.stderr)
        print(f"end to end:   {rate:>12,.0f} events/s (ack after commit, dedup on)")
        print(
            f"  CPU: daemon {daemon_cpu:.1f} s ({daemon_cpu / elapsed:.0%} of a core, "
            f"{daemon_cpu * 1e6 / stored:.2f} us/event), clients {clients_cpu:.1f} s "
            f"({clients_cpu * 1e6 / stored:.2f} us/event); load average {os.getloadavg()[0]:.1f}"
        )
        print(
            f"  daemon threads: event loop {loop_cpu * 1e6 / stored:.2f} us/event, "
            f"others (the writer, the checkpointer) {other_cpu * 1e6 / stored:.2f} us/event"
        )
        commits = max(1, status["commits"])
        print(
            f"  {status['batches_committed']:,} batches in {commits:,} commits "
            f"({status['batches_committed'] / commits:.1f} batches, "
            f"{stored / commits:,.0f} events per commit); writer busy "
            f"{status['commit_seconds']:.1f} s of {elapsed:.1f} s"
        )
        # Upper bounds on this run's rate from its own costs: the cores shared by daemon
        # and clients (clients counted from the start signal: start-up and drawing the
        # plan do not compete with the daemon), and the writer's serial path.
        reported = [re.search(r"cpu_after_go=([0-9.]+)s", output) for output in outputs]
        if all(reported):
            clients_after_go = sum(float(match.group(1)) for match in reported if match)
            cores = os.cpu_count() or 1
            cpu_bound = cores * stored / (daemon_cpu + clients_after_go)
            writer_bound = stored / max(status["commit_seconds"], 1e-9)
            print(
                f"  bounds: {cpu_bound:,.0f} events/s if the {cores} cores did nothing but "
                f"this run's CPU per event (clients {clients_after_go * 1e6 / stored:.2f} "
                f"us/event after the start); {writer_bound:,.0f} events/s if the writer "
                f"never waited for work"
            )
        else:
            print("  bounds: not computed (a client did not report its CPU)")
        daemon.terminate()
        daemon.wait(60)
        ceiling, rows = _raw_ceiling(db, workdir)
        print(
            f"raw ceiling:  {ceiling:>12,.0f} events/s (sqlite3 executemany, 1k/txn, {rows:,} rows)"
        )
        print(f"ratio:        {rate / ceiling:>12.0%} of the raw ceiling")
        print(f"daemon RSS:   {rss / 1024:>12.1f} MiB at the end (peak {peak / 1024:.1f} MiB)")
        ok = rate >= TARGET_RATE and rate / ceiling >= TARGET_RATIO and stored == args.events
        print(
            f"targets: >= {TARGET_RATE:,} events/s and >= {TARGET_RATIO:.0%} of the ceiling: "
            f"{'met' if ok else 'NOT met'}"
        )
        return 0
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
                client.wait()
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
