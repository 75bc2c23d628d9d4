"""Small JSON-lines event files for CLI tests, and a real daemon to talk to."""

from __future__ import annotations

import json
import random
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tests.support.daemon import daemon_command
from uptake.client import daemon_is_running

__all__ = ["SINCE", "UNTIL", "event_lines", "running_daemon", "write_lines"]

SINCE = "2026-11-01"
UNTIL = "2026-11-15"
_START = int(datetime(2026, 11, 1, tzinfo=timezone.utc).timestamp())


def event_lines(seed: int = 7, days: int = 14, users: int = 6) -> list[dict[str, Any]]:
    """Events of a tiny product: logins, explicit sessions, features, seats and a release.

    Timestamps alternate between integer microseconds and ISO-8601 strings.
    """
    rng = random.Random(seed)
    lines: list[dict[str, Any]] = [
        {"ts": "2026-10-31T08:00:00Z", "kind": "seats", "account": "acme", "value": 4},
        {"ts": "2026-11-07T12:00:00Z", "kind": "release", "name": "1.1.0"},
    ]
    for day in range(days):
        for user in range(users):
            if rng.random() < 0.4:
                continue
            base = _START + day * 86400 + 9 * 3600 + user * 120
            who = {"user": f"u{user}", "account": "acme" if user < 3 else "globex"}
            session = {"session": f"s{day}-{user}", **who}
            lines.append({"ts": base * 10**6, "kind": "login", **who})
            lines.append({"ts": (base + 5) * 10**6, "kind": "session_start", **session})
            for feature in range(rng.randint(0, 3)):
                stamp = datetime.fromtimestamp(base + 60 + feature, tz=timezone.utc)
                lines.append(
                    {
                        "ts": stamp.isoformat().replace("+00:00", "Z"),
                        "kind": "feature",
                        "name": f"feature_{feature}",
                        "props": {"integration": "slack"} if feature == 2 else {"n": 1},
                        **session,
                    }
                )
            lines.append({"ts": (base + 900) * 10**6, "kind": "session_end", **session})
    return lines


def write_lines(path: Path, lines: list[Any]) -> Path:
    """Write ``lines`` as JSON lines (strings are written as they are)."""
    with path.open("w", encoding="utf-8") as handle:
        for line in lines:
            handle.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return path


@contextmanager
def running_daemon(socket: Path, db: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run the real daemon in the foreground on ``socket`` / ``db``; stop it afterwards."""
    process = subprocess.Popen(
        daemon_command(socket, db, log),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not daemon_is_running(socket, timeout=1.0):
            if process.poll() is not None or time.monotonic() > deadline:
                log_text = log.read_text() if log.exists() else "(no log)"
                raise RuntimeError(f"the daemon did not start: {log_text[-2000:]}")
            time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
