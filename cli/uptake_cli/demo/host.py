"""One simulated host app for `usage demo`: sends its shard of the scenario through the SDK.

``usage demo`` runs several of these at once, each as its own process, the way several
app servers would share one daemon::

    python -m uptake_cli.demo.host --socket /tmp/up1/d.sock --shard 0 --shards 4 \
        --days 90 --seed 7 --until 2026-11-23

The first line on stdout is ``events N``: how many events this host will send, so the
demo knows what to expect before the events arrive. Then the host hands every event to
``uptake.record`` (the real SDK: buffer, background sender, acks), flushes, and exits
0 when the daemon acknowledged all of them, 1 (with the SDK's counters on stderr) if not.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import date
from typing import Final

import uptake
from uptake_cli.demo.simulation import DEFAULT_DAYS, DEFAULT_SEED, Scenario

__all__ = ["main", "run_host"]

#: Events per batch frame: big enough to amortise a round trip, far below the frame limit.
_MAX_BATCH: Final = 2000
#: Seconds the host waits for its last batches to be acknowledged.
_FLUSH_TIMEOUT: Final = 300.0


def run_host(socket: str, shard: int, shards: int, scenario: Scenario) -> int:
    """Send shard ``shard`` of ``shards`` of ``scenario`` to the daemon on ``socket``.

    Returns the process exit status: 0 when every event was acknowledged.
    """
    events = list(scenario.events(shard, shards))
    print(f"events {len(events)}", flush=True)
    uptake.configure(
        app=f"demo-host-{shard}",
        socket=socket,
        max_batch=_MAX_BATCH,
        # The whole shard fits in the buffer, so recording never drops an event.
        max_queue=len(events) + _MAX_BATCH,
        # The demo ends with a complete database, never with events parked in a spool.
        spool=False,
    )
    try:
        for event in events:
            uptake.record(event)
        uptake.flush(timeout=_FLUSH_TIMEOUT)
        stats = uptake.stats()
    finally:
        uptake.shutdown()
    if stats.sent != len(events) or stats.dropped or stats.rejected:
        print(
            f"demo host {shard}: {stats.sent} of {len(events)} events acknowledged "
            f"(dropped {stats.dropped} {stats.dropped_by_reason}, rejected {stats.rejected} "
            f"{stats.rejected_by_reason}, failed attempts {stats.failed})",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run one host; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m uptake_cli.demo.host",
        description="Send one shard of the `usage demo` scenario to a daemon through the SDK.",
    )
    parser.add_argument("--socket", required=True, help="daemon Unix socket path")
    parser.add_argument("--shard", type=int, required=True, help="this host's shard, from 0")
    parser.add_argument("--shards", type=int, required=True, help="number of host processes")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help="simulated days")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    parser.add_argument(
        "--until", type=date.fromisoformat, required=True, help="day after the last (UTC)"
    )
    args = parser.parse_args(argv)
    scenario = Scenario(days=args.days, seed=args.seed, until=args.until)
    return run_host(args.socket, args.shard, args.shards, scenario)


if __name__ == "__main__":
    sys.exit(main())
