"""What does the SDK's worker pay per event to build, validate, id and encode a batch?

Run: ``.venv/bin/python benchmarks/bench_worker.py`` (``--rounds``, ``--baseline REV``).

Times ``uptake._build.build_events`` (the worker's whole per-batch path from buffered
call tuples to the ``Batch`` payload) on batches of 1000 calls, against two baselines
measured in the same process, interleaved round by round (so a busy machine slows them
alike), in thread CPU time (time spent waiting for a core is not counted):

* **main**: the same function at ``--baseline`` (default: the commit this work started
  from), loaded from git into its own module, with the ``uptake._ids`` of that commit;
* **encode floor**: one ``msgspec`` encode of the same events already built as ``Event``
  Structs: the part of the work no Python-side change can remove.

Workloads:

* ``track``: bench_track's call, ``track("export_csv", format="xlsx", n=i)`` for one user;
* ``mixed``: 20 features, 50 users with sessions, 0-3 props, a login or seat count now
  and then (6-tuples);
* ``bare``: ``track("export_csv")`` without props.

Each candidate cycles through its own ``--copies`` copies of every batch, so that, like
the worker, it reads calls that are no longer in the CPU's caches. Then the parts of
this tree's path on the ``track`` workload (ids, the props check, ``Event`` construction,
the encode), each timed alone on one hot batch, to show where the time goes. The
figures are the best of ``--rounds`` rounds, in ns per event.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uptake._build as build
from uptake._ids import new_event_ids
from uptake._model import Event
from uptake._stats import Counters

BATCH = 1000
_ROOT = Path(__file__).resolve().parent.parent
_DEFAULT_BASELINE = "b4f8141"


def _module_at(revision: str, path: str, name: str, replace: dict[str, str]) -> types.ModuleType:
    source = subprocess.run(
        ["git", "-C", str(_ROOT), "show", f"{revision}:{path}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for old, new in replace.items():
        source = source.replace(old, new)
    module = types.ModuleType(name)
    sys.modules[name] = module
    exec(compile(source, f"{revision}:{path}", "exec"), module.__dict__)
    return module


def main_build_events(revision: str) -> Callable[..., Any] | None:
    """``build_events`` as it was at ``revision`` (None if git cannot show it)."""
    try:
        _module_at(revision, "sdk/uptake/_ids.py", "_bench_main_ids", {})
        module = _module_at(
            revision,
            "sdk/uptake/_build.py",
            "_bench_main_build",
            {"from uptake._ids import": "from _bench_main_ids import"},
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"baseline {revision} not available ({exc}); main skipped")
        return None
    function: Callable[..., Any] = module.build_events
    return function


def workloads() -> dict[str, list[tuple[Any, ...]]]:
    """Batches of buffered calls, as ``track()`` and the other calls leave them."""
    now = time.time_ns()
    user = ("u1", "acme", None)
    users = [(f"user-{i}", f"account-{i % 7}", f"session-{i}") for i in range(50)]
    features = [f"feature_{i}" for i in range(20)]
    mixed: list[tuple[Any, ...]] = []
    for i in range(BATCH):
        identity = users[(i // 5) % 50]
        if i % 97 == 0:
            mixed.append((now + i, "seats", None, None, identity, 40 + i % 9))
        elif i % 89 == 0:
            mixed.append((now + i, "login", None, {"method": "sso"}, identity, None))
        else:
            props = [None, {"plan": "pro"}, {"plan": "team", "n": i}, {"a": 1, "b": 2.5, "c": True}]
            mixed.append((now + i, "feature", features[i % 20], props[i % 4], identity))
    return {
        "track": [
            (now + i, "feature", "export_csv", {"format": "xlsx", "n": i}, user)
            for i in range(BATCH)
        ],
        "mixed": mixed,
        "bare": [(now + i, "feature", "export_csv", None, user) for i in range(BATCH)],
    }


def _cpu_ns(run: Callable[[], object]) -> float:
    start = time.thread_time_ns()
    run()
    return (time.thread_time_ns() - start) / BATCH


def measure(rounds: int, baseline: str, copies: int) -> None:
    """Print, per workload, each candidate's best ns per event and the ratios."""
    main = main_build_events(baseline)
    print(
        f"python {sys.version.split()[0]}, batches of {BATCH}, best of {rounds} rounds,"
        f" each candidate cycling through {copies} copies of each batch\n"
    )
    for label in workloads():
        # Every candidate gets its own copies, built alike, and takes the next one each
        # round: like the worker, it reads calls buffered long ago (not in the CPU's
        # caches), not the batch it read a moment before.
        def batches(label: str = label) -> list[list[tuple[Any, ...]]]:
            return [workloads()[label] for _ in range(copies)]

        ours, floors = batches(), batches()
        built = [build.build_events(batch, "bench", Counters()).events for batch in floors]
        candidates: dict[str, tuple[Callable[[Any], object], list[Any]]] = {
            "encode floor": (build.encoder.encode, built),
            "this tree": (lambda batch: build.build_events(batch, "bench", Counters()), ours),
        }
        if main is not None:
            theirs = batches()
            assert len(main(theirs[0], "bench", Counters())) == len(ours[0])
            candidates["main"] = (lambda batch: main(batch, "bench", Counters()), theirs)
        samples: dict[str, list[float]] = {name: [] for name in candidates}
        for round_number in range(rounds):
            for name, (run, inputs) in candidates.items():
                batch = inputs[round_number % copies]
                samples[name].append(_cpu_ns(lambda run=run, batch=batch: run(batch)))
        best = {name: min(values) for name, values in samples.items()}
        print(f"{label}:")
        for name, value in best.items():
            median = statistics.median(samples[name])
            print(f"  {name:<13} {value:7.0f} ns/event (median {median:.0f})")
        figure = best["this tree"]
        line = f"  this tree / encode floor = {figure / best['encode floor']:.2f}x"
        if "main" in best:
            line += f"; this tree / main = {figure / best['main']:.2f}x"
        print(line + "\n")
    _parts(rounds, workloads()["track"])


def _parts(rounds: int, batch: list[tuple[Any, ...]]) -> None:
    """Where this tree's time goes on one workload, each part timed alone."""
    stamps = [item[0] // 1000 for item in batch]
    ids = new_event_ids(stamps)
    events = build.build_events(batch, "bench", Counters()).events
    fields = [(e.id, e.ts, e.kind, e.name, e.user, e.account, e.session) for e in events]
    parts: dict[str, Callable[[], object]] = {
        "timestamps (item[0] // 1000)": lambda: [item[0] // 1000 for item in batch],
        "ids (new_event_ids)": lambda: new_event_ids(stamps),
        "props, batch check": lambda: build._all_props_small(batch),
        "props, per-event check": lambda: [build._props_bound(item[3]) for item in batch],
        "Event construction": lambda: [
            Event(*f, None, item[3], "bench") for f, item in zip(fields, batch, strict=True)
        ],
        "encode (msgspec)": lambda: build.encoder.encode(events),
        "whole build_events": lambda: build.build_events(batch, "bench", Counters()),
    }
    del ids
    samples: dict[str, list[float]] = {name: [] for name in parts}
    for _ in range(rounds):
        for name, run in parts.items():
            samples[name].append(_cpu_ns(run))
    print("parts of this tree's path, track workload (each alone, best ns/event):")
    for name, values in samples.items():
        print(f"  {name:<30} {min(values):7.0f}")


def main() -> None:
    """Parse the options and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument(
        "--baseline", default=_DEFAULT_BASELINE, help="git revision of the main comparison"
    )
    parser.add_argument(
        "--copies", type=int, default=20, help="copies of each batch per candidate (cold caches)"
    )
    args = parser.parse_args()
    measure(args.rounds, args.baseline, args.copies)


if __name__ == "__main__":
    main()
