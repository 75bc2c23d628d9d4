"""A host app for daemon tests: tracks numbered events through the real SDK.

    python tests/aggregator/sdk_host.py SOCKET SPOOL_DIR COUNT [--pace N]

Each feature event carries the prop ``n`` (0..COUNT-1), so a test can check that every
event arrived exactly once. With ``--pace N`` it sleeps a little after every N events, so
a test can kill the daemon while events are still being tracked. After tracking it flushes
until the SDK has nothing left to deliver (stdin closing also ends it), then prints its
stats as JSON and shuts down.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import threading
import time

import uptake


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("socket")
    parser.add_argument("spool_dir")
    parser.add_argument("count", type=int)
    parser.add_argument("--pace", type=int, default=0)
    args = parser.parse_args()
    uptake.configure(
        app="sdk-host",
        socket=args.socket,
        spool_dir=args.spool_dir,
        flush_interval=0.05,
        max_batch=500,
    )
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()

    uptake.set_seats("acme", 25)
    uptake.login(user="ada", account="acme")
    with uptake.session():
        for n in range(args.count):
            uptake.track(("search", "export_csv", "share")[n % 3], n=n)
            if args.pace and n % args.pace == args.pace - 1:
                time.sleep(0.02)
    print("tracked", flush=True)
    # Deliver everything, including what was spooled while the daemon was down.
    while not stop.is_set():
        flushed = uptake.flush(timeout=1.0)
        stats = uptake.stats()
        if flushed and stats.queued == 0 and stats.replayed >= stats.spooled:
            break
    uptake.shutdown(timeout=5.0)
    print(json.dumps(dataclasses.asdict(uptake.stats())), flush=True)


if __name__ == "__main__":
    main()
