"""Reports through the daemon run in a worker process, never a thread of the daemon.

A report in a thread would share the GIL with ingest; a worker process does not, and
it must not outlive the daemon, however the daemon ends.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.support.daemon import DaemonProcess, make_events
from uptake.protocol import ReportFilters
from uptake_aggregator.metrics import build_report


def _children(pid: int) -> set[int]:
    """Live child processes of ``pid`` (Linux /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rpartition(")")[2].split()[0] != "Z"


def _wait_gone(pids: set[int], timeout: float = 10.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while (alive := {pid for pid in pids if _alive(pid)}) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def _report_through_daemon(daemon: DaemonProcess) -> set[int]:
    """Store events, query a report, compare it with the local one; the daemon's children."""
    with daemon.client() as client:
        client.send(make_events(300))
        # ``core`` travels in the query's filters (docs/protocol.md) to the worker.
        filters = ReportFilters(core=["share", "export_csv"])
        via_daemon = client.query("usage", filters)
    assert via_daemon == build_report(daemon.db, filters)
    assert via_daemon["activation"]["core"] == ["export_csv", "share"]
    assert daemon.process is not None
    workers = _children(daemon.process.pid)
    assert workers, "the report ran in no worker process"
    return workers


def test_report_worker_ends_with_the_daemon(fresh_daemon: DaemonProcess) -> None:
    daemon = fresh_daemon.start()
    workers = _report_through_daemon(daemon)
    assert daemon.terminate() == 0
    assert not _wait_gone(workers)


def test_report_worker_ends_when_the_daemon_is_killed(fresh_daemon: DaemonProcess) -> None:
    daemon = fresh_daemon.start()
    workers = _report_through_daemon(daemon)
    assert daemon.process is not None
    os.kill(daemon.process.pid, signal.SIGKILL)
    daemon.wait()
    # Orphaned, the worker reads end-of-file from the dead daemon and exits.
    assert not _wait_gone(workers)
