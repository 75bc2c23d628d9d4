"""Process exit: buffered events are delivered, or spooled and replayed later; exit never hangs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.sdk.fake_daemon import FakeDaemon
from uptake._spool import read_records

_TRACKER = """
import sys
import uptake

uptake.configure(flush_interval=60.0)  # nothing is sent before exit unless atexit does it
for number in range(int(sys.argv[1])):
    uptake.track(sys.argv[2], n=number)
"""


def run_tracker(
    daemon: FakeDaemon, spool_dir: Path, count: int, name: str, exit_timeout: float = 2.0
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "UPTAKE_SOCKET": daemon.address,
        "UPTAKE_SPOOL_DIR": str(spool_dir),
        "UPTAKE_EXIT_TIMEOUT": str(exit_timeout),
    }
    # The subprocess timeout only guards the test run; the SDK bounds exit by itself.
    return subprocess.run(
        [sys.executable, "-c", _TRACKER, str(count), name],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def spooled_events(spool_dir: Path) -> int:
    return sum(
        len(record)
        for path in spool_dir.rglob("*.spool")
        for record in read_records(path.read_bytes())
    )


def test_normal_exit_delivers_buffered_events(daemon: FakeDaemon, spool_dir: Path) -> None:
    result = run_tracker(daemon, spool_dir, 500, "tracked")
    assert result.returncode == 0, result.stderr
    assert Counter(daemon.features()) == {"tracked": 500}
    assert spooled_events(spool_dir) == 0


@pytest.mark.parametrize("trouble", ["down", "stall"])
def test_exit_with_daemon_unavailable_spools_then_another_process_replays(
    daemon: FakeDaemon, spool_dir: Path, trouble: str
) -> None:
    if trouble == "down":
        daemon.stop()
    else:
        daemon.mode = "stall"
    result = run_tracker(daemon, spool_dir, 500, "offline", exit_timeout=1.0)
    assert result.returncode == 0, result.stderr
    assert spooled_events(spool_dir) == 500
    assert daemon.features() == []
    if trouble == "down":
        daemon.start()
    else:
        daemon.mode = "ok"
    result = run_tracker(daemon, spool_dir, 1, "online")
    assert result.returncode == 0, result.stderr
    assert Counter(daemon.features()) == {"offline": 500, "online": 1}
    numbers = [event.props["n"] for event in daemon.events() if event.name == "offline"]
    assert numbers == list(range(500)), "replayed in order"
    assert list(spool_dir.rglob("*.spool")) == []
