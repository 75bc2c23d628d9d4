"""The real SDK against the real daemon: events stored once, even across a daemon crash."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess, stored_ids
from uptake_aggregator.store.sqlite.storage import connect_readonly

HOST = Path(__file__).with_name("sdk_host.py")


def _start_host(socket_path: Path, spool: Path, count: int, pace: int = 0) -> subprocess.Popen[str]:
    command = [sys.executable, str(HOST), str(socket_path), str(spool), str(count)]
    if pace:
        command += ["--pace", str(pace)]
    return subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(
    host: subprocess.Popen[str], timeout: float = 90, *, until_delivered: bool = False
) -> dict[str, object]:
    """Collect the host's stats; ``until_delivered``: let it flush until all is delivered."""
    try:
        if until_delivered:
            host.wait(timeout=timeout)  # it exits by itself once nothing is left to send
        out, err = host.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        host.kill()
        out, err = host.communicate()
        raise AssertionError(f"the SDK host did not finish: {out} {err}") from None
    assert host.returncode == 0, err
    stats: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return stats


def _host_rows(db: Path) -> list[tuple[str, str | None]]:
    conn = connect_readonly(db)
    try:
        return conn.execute(
            "SELECT kind, props FROM events WHERE source = 'sdk-host' ORDER BY id"
        ).fetchall()
    finally:
        conn.close()


def _feature_numbers(rows: list[tuple[str, str | None]]) -> collections.Counter[int]:
    return collections.Counter(json.loads(props)["n"] for kind, props in rows if kind == "feature")


def test_events_tracked_through_the_sdk_are_stored(daemon: DaemonProcess, short_tmp: Path) -> None:
    host = _start_host(daemon.socket, short_tmp / "spool", 3000)
    stats = _finish(host)
    assert stats["dropped"] == 0 and stats["rejected"] == 0
    rows = _host_rows(daemon.db)
    kinds = collections.Counter(kind for kind, _ in rows)
    assert kinds == {"feature": 3000, "seats": 1, "login": 1, "session_start": 1, "session_end": 1}
    assert _feature_numbers(rows) == collections.Counter(range(3000))
    conn = connect_readonly(daemon.db)
    try:
        assert conn.execute("SELECT seats FROM seats WHERE account = 'acme'").fetchall() == [(25,)]
    finally:
        conn.close()


@pytest.mark.slow
def test_kill_9_then_sdk_spool_delivers_the_rest(
    fresh_daemon: DaemonProcess, short_tmp: Path
) -> None:
    daemon = fresh_daemon.start()
    count = 20_000
    host = _start_host(daemon.socket, short_tmp / "spool", count, pace=250)
    try:
        deadline = time.monotonic() + 60
        while len(stored_ids(daemon.db)) < 2000:
            assert time.monotonic() < deadline, "the SDK host delivered nothing"
            time.sleep(0.02)
        daemon.kill()  # mid-ingest: the host keeps tracking, the SDK spools
        time.sleep(0.5)
        daemon.start()
        stats = _finish(host, until_delivered=True)
    finally:
        if host.poll() is None:
            host.kill()
            host.communicate()
    rows = _host_rows(daemon.db)
    numbers = _feature_numbers(rows)
    assert numbers == collections.Counter(range(count)), (
        f"missing {count - len(numbers)}, repeated {sum(v > 1 for v in numbers.values())}"
    )
    assert len(rows) == count + 4
    assert stats["dropped"] == 0
    # The scenario really happened: batches failed while the daemon was down, were
    # spooled, and were replayed once it was back.
    assert stats["spooled"] == stats["replayed"] > 0
