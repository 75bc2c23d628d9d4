"""How long does ``uptake.track()`` take the host app? Against a floor and two peers.

Run: ``.venv/bin/python benchmarks/bench_track.py`` (peers from ``pip install -e '.[bench]'``).

All candidates run in this one process, interleaved round by round (so background noise
on a shared machine hits them alike), with the garbage collector off while timing, as
``timeit`` does. A round times ``--calls`` back-to-back calls; the figure is the median
over rounds of the per-call time, loop overhead included for every candidate alike.

Candidates, each recording the same thing (user u1 used ``export_csv`` with format=xlsx):

* floor, inline: ``append((time_ns(), "export_csv", {"format": "xlsx"}))`` written in
  the loop: a bounded buffer append with a timestamp and no function call at all;
* floor, call: the same inside ``def floor(feature, /, **props)``: the least any
  ``track(feature, **props)`` function can cost in CPython (call + kwargs dict);
* uptake: ``uptake.track("export_csv", format="xlsx")`` with a real background worker
  building, validating and encoding every event (delivered to a sink that discards
  them); ``uptake.flush()`` runs between rounds, untimed, so the buffer never fills;
* segment: ``segment.analytics.Client(send=False).track(...)``;
* posthog: ``posthog.Posthog(..., send=False).capture(...)``.

Targets (issue 2): uptake median <= 0.5 us and <= 2.5x the floor (the call floor: no
Python ``track()`` can beat a Python call); >= 30x faster than segment and >= 80x
faster than posthog. Then the SDK's idle memory: RSS of a fresh interpreter after
``import uptake; uptake.configure(...)`` (and after a first event, worker running) minus
the same interpreter without uptake, each in its own subprocess. Two baselines: a bare
interpreter, and one with the standard-library modules every service already has
(``HOST_STDLIB``: logging, inspect, socket...). The 3 MB target is checked against the
second: what the SDK itself adds (msgspec, platformdirs, its own modules and buffers).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import uptake
from uptake.protocol import Event

Runner = Callable[[int], None]


class _DiscardSink:
    """Receives the worker's validated events and drops them."""

    def write(self, events: list[Event]) -> None:
        del events


def _floor_runners() -> tuple[Runner, Runner]:
    buffer: deque[Any] = deque(maxlen=100_000)
    append = buffer.append
    time_ns = time.time_ns

    def inline(calls: int) -> None:
        for _ in range(calls):
            append((time_ns(), "export_csv", {"format": "xlsx"}))

    def floor(feature: str, /, **props: Any) -> None:
        append((time_ns(), feature, props))

    def call(calls: int) -> None:
        for _ in range(calls):
            floor("export_csv", format="xlsx")

    return inline, call


def _uptake_runner() -> Runner:
    uptake.configure(app="bench", sink=_DiscardSink())
    uptake.identify(user="u1", account="acme")
    track = uptake.track

    def run(calls: int) -> None:
        for _ in range(calls):
            track("export_csv", format="xlsx")

    return run


def _segment_runner() -> Runner | None:
    try:
        from segment import analytics
    except ImportError:
        return None
    client = analytics.Client("bench-write-key", send=False)
    track = client.track

    def run(calls: int) -> None:
        for _ in range(calls):
            track(user_id="u1", event="export_csv", properties={"format": "xlsx"})

    return run


def _posthog_runner() -> Runner | None:
    try:
        from posthog import Posthog
    except ImportError:
        return None
    client = Posthog("phc_bench", host="http://127.0.0.1:9", send=False)
    capture = client.capture

    def run(calls: int) -> None:
        for _ in range(calls):
            capture("export_csv", distinct_id="u1", properties={"format": "xlsx"})

    return run


def measure_worker(events: int = 100_000) -> float:
    """Background cost (ns per event) of building, validating and encoding, host idle.

    Process CPU time while ``flush()`` waits for the worker (the waiting thread costs
    none): time the process spends waiting for a core on a busy host is not counted.
    """
    client = uptake.Client(sink=_DiscardSink(), max_queue=events + 1, flush_interval=60.0)
    client.identify(user="u1", account="acme")
    client.track("warm_up")
    client.flush(5.0)
    client.processor.wake_at = events + 1  # enqueue everything first, then time the worker alone
    for number in range(events):
        client.track("export_csv", format="xlsx", n=number)
    start = time.process_time_ns()
    client.flush(60.0)
    elapsed = time.process_time_ns() - start
    client.shutdown(1.0)
    return elapsed / events


def measure_total_cpu(events: int = 200_000, rounds: int = 3) -> float:
    """Process CPU (ns per event) of tracking *and* delivering, GC on, to a live daemon.

    What a CPU-bound host pays: its own calls plus the worker thread's building,
    validating, encoding and sending, which share the GIL. A real daemon runs in its own
    process (its CPU is not counted); the best of ``rounds`` is reported.
    """
    from uptake.client import daemon_is_running

    with tempfile.TemporaryDirectory(prefix="upb", dir="/tmp") as directory:
        socket_path = os.path.join(directory, "d.sock")
        env = {**os.environ, "XDG_CACHE_HOME": os.path.join(directory, "cache")}
        daemon = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uptake_aggregator",
                "--foreground",
                "--quiet",
                "--no-adopt",
                "--socket",
                socket_path,
                "--db",
                os.path.join(directory, "uptake.db"),
                "--log-file",
                os.path.join(directory, "daemon.log"),
            ],
            env=env,
        )
        try:
            deadline = time.monotonic() + 30
            while not daemon_is_running(socket_path):
                if time.monotonic() > deadline or daemon.poll() is not None:
                    raise SystemExit("the daemon did not start; is the server extra installed?")
                time.sleep(0.05)
            client = uptake.Client(
                socket=socket_path,
                spool_dir=os.path.join(directory, "spool"),
                max_queue=events + 1,
            )
            client.identify(user="u1", account="acme")
            track = client.track
            best = float("inf")
            for _ in range(rounds):
                start = time.process_time_ns()
                for number in range(events):
                    track("export_csv", format="xlsx", n=number)
                if not client.flush(120.0):
                    raise SystemExit(f"flush failed: {client.stats()}")
                best = min(best, (time.process_time_ns() - start) / events)
            stats = client.stats()
            client.shutdown(5.0)
            if (stats.sent, stats.dropped) != (rounds * events, 0):
                raise SystemExit(f"not every event was delivered: {stats}")
            return best
        finally:
            daemon.terminate()
            daemon.wait(30)


def _time_round(run: Runner, calls: int) -> float:
    start = time.perf_counter_ns()
    run(calls)
    return (time.perf_counter_ns() - start) / calls


def measure(rounds: int, calls: int, peer_calls: int) -> dict[str, float]:
    """Median ns per call of every available candidate, interleaved round by round."""
    inline, call = _floor_runners()
    candidates: dict[str, tuple[Runner, int]] = {
        "floor (inline append)": (inline, calls),
        "floor (call + append)": (call, calls),
        "uptake.track": (_uptake_runner(), calls),
    }
    for name, factory in (("segment track", _segment_runner), ("posthog capture", _posthog_runner)):
        runner = factory()
        if runner is None:
            print(f"{name}: not installed (pip install -e '.[bench]'); skipped")
        else:
            candidates[name] = (runner, peer_calls)
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for run, count in candidates.values():  # warm up caches, threads, lazy imports
        run(count)
    uptake.flush(5.0)
    for _ in range(rounds):
        for name, (run, count) in candidates.items():
            gc.disable()
            try:
                samples[name].append(_time_round(run, count))
            finally:
                gc.enable()
            if name == "uptake.track":
                uptake.flush(5.0)  # untimed: keep the buffer from filling across rounds
    stats = uptake.stats()
    print(
        f"uptake worker: sent {stats.sent} events, dropped {stats.dropped},"
        f" rejected {stats.rejected} (all must be 0 but sent)"
    )
    return {name: statistics.median(values) for name, values in samples.items()}


#: Standard-library modules that practically every Python service has loaded already
#: (logging alone brings re, enum, collections; dataclasses brings inspect). The SDK's
#: overhead is measured on top of them, and also on top of a bare interpreter.
HOST_STDLIB = (
    "logging,threading,socket,typing,inspect,dataclasses,pathlib,tempfile,shutil,datetime,"
    "decimal,uuid,random,json,re,contextvars,struct,zlib,fcntl"
)

_RSS_PROBE = """
import importlib, sys
def rss_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
baseline, stage = sys.argv[1], sys.argv[2]
for name in filter(None, baseline.split(",")):
    importlib.import_module(name)
if stage != "baseline":
    import uptake
    uptake.configure(app="bench")
    if stage == "running":
        uptake.track("probe", x=1)
        uptake.flush(1.0)
print(rss_kib())
"""


def measure_rss(repeats: int = 5) -> dict[tuple[str, str], float]:
    """Median RSS (KiB) of fresh interpreters per (baseline, stage)."""
    results: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory(prefix="up") as directory:
        env = {
            **os.environ,
            "UPTAKE_SOCKET": os.path.join(directory, "none.sock"),
            "UPTAKE_SPOOL_DIR": os.path.join(directory, "spool"),
        }
        for baseline_name, baseline in (("bare", ""), ("host", HOST_STDLIB)):
            for stage in ("baseline", "configured", "running"):
                values = [
                    int(
                        subprocess.run(
                            [sys.executable, "-c", _RSS_PROBE, baseline, stage],
                            env=env,
                            capture_output=True,
                            text=True,
                            check=True,
                        ).stdout
                    )
                    for _ in range(repeats)
                ]
                results[baseline_name, stage] = statistics.median(values)
    return results


def main() -> None:
    """Print each figure, the ratios and the targets."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--calls", type=int, default=1000, help="calls per round (uptake, floor)")
    parser.add_argument("--peer-calls", type=int, default=100, help="calls per round (peers)")
    args = parser.parse_args()
    logging.getLogger("segment").setLevel(logging.ERROR)
    logging.getLogger("posthog").setLevel(logging.ERROR)

    print(f"python {sys.version.split()[0]}, {args.rounds} interleaved rounds\n")
    medians = measure(args.rounds, args.calls, args.peer_calls)
    width = max(len(name) for name in medians)
    for name, value in medians.items():
        print(f"  {name:<{width}}  {value:10.1f} ns/call")
    ours = medians["uptake.track"]
    floor_call = medians["floor (call + append)"]
    floor_inline = medians["floor (inline append)"]
    print()
    checks = [
        (f"uptake median {ours / 1000:.3f} us <= 0.5 us", ours <= 500),
        (f"uptake / call floor = {ours / floor_call:.2f}x <= 2.5x", ours <= 2.5 * floor_call),
    ]
    print(f"  (uptake / inline floor = {ours / floor_inline:.2f}x, for information)")
    if "segment track" in medians:
        ratio = medians["segment track"] / ours
        checks.append((f"segment / uptake = {ratio:.0f}x >= 30x", ratio >= 30))
    if "posthog capture" in medians:
        ratio = medians["posthog capture"] / ours
        checks.append((f"posthog / uptake = {ratio:.0f}x >= 80x", ratio >= 80))

    worker_ns = measure_worker()
    print(
        f"  (background worker: {worker_ns / 1000:.2f} us per event to build, validate and"
        f" encode, off the caller's path: ~{1e9 / worker_ns:,.0f} events/s per process)"
    )
    total_ns = measure_total_cpu()
    print(
        f"  total process CPU per event (caller + worker, GC on, live daemon):"
        f" {total_ns / 1000:.2f} us"
    )
    for name in ("segment track", "posthog capture"):
        if name in medians:
            print(
                f"    {name} caller cost alone {medians[name] / 1000:.2f} us:"
                f" {medians[name] / total_ns:.1f}x uptake's total"
            )
    rss = measure_rss()
    for baseline_name, label in (("bare", "bare interpreter"), ("host", "host stdlib loaded")):
        base = rss[baseline_name, "baseline"]
        configured = (rss[baseline_name, "configured"] - base) / 1024
        running = (rss[baseline_name, "running"] - base) / 1024
        print(
            f"  RSS over {label} ({base / 1024:.1f} MiB): import uptake + configure"
            f" {configured:+.2f} MiB, worker running {running:+.2f} MiB"
        )
    host_idle = (rss["host", "configured"] - rss["host", "baseline"]) / 1024
    checks.append((f"idle SDK RSS over host stdlib {host_idle:.2f} MiB <= 3 MiB", host_idle <= 3))
    print()
    for label, passed in checks:
        print(f"  [{'PASS' if passed else 'FAIL'}] {label}")
    uptake.shutdown(1.0)


if __name__ == "__main__":
    main()
