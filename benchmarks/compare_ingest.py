"""Paired ingest comparison: this checkout against an earlier commit, in alternation.

The machine is shared and its speed drifts up to 2x within minutes, so two separate
``bench_ingest.py`` runs of two versions compare the hours more than the code. This runs
them in alternating pairs (base, this tree, base, this tree, ...) and prints the ratio
of events/s within each pair, and their median.

The base commit is checked out into a temporary git worktree; both sides run with the
same interpreter and dependencies, each importing its own ``sdk``, ``aggregator`` and
``cli`` sources (``PYTHONPATH``).

    .venv/bin/python benchmarks/compare_ingest.py d307b29                # 5 pairs, 1M
    .venv/bin/python benchmarks/compare_ingest.py HEAD~1 --pairs 8 --events 500000
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_RATE = re.compile(r"end to end:\s+([\d,]+) events/s")
_DAEMON = re.compile(r"CPU: daemon [\d.]+ s \(\d+% of a core, ([\d.]+) us/event\)")


def _run(tree: Path, events: int) -> tuple[float, str]:
    """One bench_ingest run of ``tree``'s sources: (events/s, daemon CPU summary)."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(str(tree / part) for part in ("sdk", "aggregator", "cli")),
    )
    done = subprocess.run(
        [
            sys.executable,
            str(tree / "benchmarks" / "bench_ingest.py"),
            "--repeat",
            "1",
            "--events",
            str(events),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    rate = _RATE.search(done.stdout)
    if done.returncode != 0 or rate is None:
        sys.stderr.write(done.stdout[-2000:] + done.stderr[-2000:])
        raise SystemExit(f"bench_ingest failed for {tree}")
    daemon = _DAEMON.search(done.stdout)
    cpu = f"daemon {daemon.group(1)} us/event" if daemon else ""
    return float(rate.group(1).replace(",", "")), cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the commit to compare against (any git revision)")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="upcompare") as scratch:
        base = Path(scratch) / "base"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base), args.base],
            check=True,
        )
        try:
            for tree in (base, ROOT):
                for part in ("sdk", "aggregator", "cli"):
                    # PYTHONDONTWRITEBYTECODE may be set: compile once, not in every process.
                    compileall.compile_dir(tree / part, quiet=1, workers=0)
            ratios: list[float] = []
            for pair in range(1, args.pairs + 1):
                base_rate, base_cpu = _run(base, args.events)
                new_rate, new_cpu = _run(ROOT, args.events)
                ratios.append(new_rate / base_rate)
                print(
                    f"pair {pair}: base {base_rate:,.0f}/s ({base_cpu}), "
                    f"this tree {new_rate:,.0f}/s ({new_cpu}): {ratios[-1]:.2f}x",
                    flush=True,
                )
            print(
                f"this tree / {args.base}: median {statistics.median(ratios):.2f}x "
                f"over {len(ratios)} pairs ({min(ratios):.2f}-{max(ratios):.2f}x)"
            )
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                check=False,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
