"""The SDK against the real aggregator daemon: every event stored exactly once."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import uptake
from tests.support.daemon import DaemonProcess, stored_ids
from uptake._model import Event

pytestmark = pytest.mark.slow


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="up", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def real_daemon(workdir: Path) -> Iterator[DaemonProcess]:
    process = DaemonProcess(workdir)
    try:
        yield process.start()
    finally:
        process.stop()


def test_tracked_events_are_stored_once(real_daemon: DaemonProcess, workdir: Path) -> None:
    client = uptake.Client(
        socket=str(real_daemon.socket), spool_dir=workdir / "spool", max_batch=500
    )
    client.identify(user="u1", account="acme")
    for number in range(5000):
        client.track("export_csv", n=number)
    client.record(Event(id=b"", ts=time.time_ns() // 1000 + 10 * 86_400_000_000, kind="login"))
    assert client.flush(30.0)
    stats = client.stats()
    assert (stats.sent, stats.duplicates, stats.dropped) == (5000, 0, 0)
    assert stats.rejected_by_reason == {"future_ts": 1}
    client.shutdown(5.0)
    ids = stored_ids(real_daemon.db)
    assert len(ids) == 5000 and len(set(ids)) == 5000


def test_daemon_down_then_up_replays_the_spool_once(workdir: Path) -> None:
    daemon = DaemonProcess(workdir)
    client = uptake.Client(
        socket=str(daemon.socket), spool_dir=workdir / "spool", max_batch=100, flush_interval=0.05
    )
    try:
        for number in range(700):
            client.track("offline", n=number)
        assert client.flush(5.0)
        assert client.stats().spooled == 700
        daemon.start()
        for number in range(300):
            client.track("online", n=number)
        deadline = time.monotonic() + 30
        while client.stats().sent < 1000 and time.monotonic() < deadline:
            client.flush(1.0)
        assert client.stats().sent == 1000
        client.shutdown(5.0)
        daemon.terminate()
        ids = stored_ids(daemon.db)
        assert len(ids) == 1000 and len(set(ids)) == 1000
        assert Counter(len(i) for i in ids) == {16: 1000}
        assert list((workdir / "spool").rglob("*.spool")) == []
    finally:
        client.shutdown(1.0)
        daemon.stop()


def test_daemon_killed_mid_stream_loses_and_doubles_nothing(workdir: Path) -> None:
    daemon = DaemonProcess(workdir).start()
    client = uptake.Client(
        socket=str(daemon.socket), spool_dir=workdir / "spool", max_batch=200, max_queue=50_000
    )
    try:
        for chunk in range(50):
            for number in range(chunk * 200, chunk * 200 + 200):
                client.track("stream", n=number)
            if chunk == 20:
                client.processor._wake.set()  # the worker starts sending this chunk...
                time.sleep(0.002)
                daemon.kill()  # ...and the daemon dies (SIGKILL) with batches in flight
            elif chunk == 35:
                daemon.start()
            else:
                client.flush(0.5)
        assert client.stats().spooled > 0
        deadline = time.monotonic() + 60
        while client.stats().sent < 10_000 and time.monotonic() < deadline:
            client.flush(1.0)
        stats = client.stats()
        # sent: each event once, when first acknowledged (possibly as a duplicate of a
        # copy whose Ack the kill lost)
        assert (stats.sent, stats.dropped, stats.rejected) == (10_000, 0, 0)
        client.shutdown(5.0)
        daemon.terminate()
        ids = stored_ids(daemon.db)
        assert len(ids) == 10_000 and len(set(ids)) == 10_000
    finally:
        client.shutdown(1.0)
        daemon.stop()
