"""The SDK against the real aggregator daemon: every event stored exactly once."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
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
        assert not client.flush(0.5), "spooled, not acknowledged"
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


_APP = textwrap.dedent(
    """
    import json, os, sys, time
    import uptake

    socket_path, spool, go = sys.argv[1], sys.argv[2], sys.argv[3]
    uptake.configure(app="restarts", socket=socket_path, spool_dir=spool, max_batch=500)
    tracked = 0
    while not os.path.exists(go):  # keep tracking until both restarts are behind us
        for _ in range(500):
            uptake.track("busy", n=tracked)
            tracked += 1
        time.sleep(0.005)
    flushed = uptake.flush(timeout=30)
    stats = uptake.stats()
    print(json.dumps({"tracked": tracked, "flushed": flushed, "sent": stats.sent,
                      "spooled": stats.spooled, "replayed": stats.replayed,
                      "dropped": stats.dropped}))
    """
)


def test_flush_finishes_delivery_after_two_kill_9_restarts(workdir: Path) -> None:
    """The app's own flush(timeout=30) returns True with every event stored once.

    No other SDK process runs: what the kills pushed into the spool must be replayed by
    the app itself before flush() returns.
    """
    daemon = DaemonProcess(workdir).start()
    go = workdir / "go"
    app = subprocess.Popen(
        [sys.executable, "-c", _APP, str(daemon.socket), str(workdir / "spool"), str(go)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(2):
            time.sleep(0.4)
            daemon.kill()  # SIGKILL: batches in flight lose their Acks
            time.sleep(0.4)  # the app keeps tracking and spools meanwhile
            daemon.start()
        time.sleep(0.2)
        go.touch()
        out, err = app.communicate(timeout=60)
        assert app.returncode == 0, err
        outcome = json.loads(out.strip().splitlines()[-1])
        assert outcome["flushed"] is True
        assert outcome["spooled"] > 0, "the kills made the app spool"
        assert outcome["replayed"] == outcome["spooled"]
        assert (outcome["sent"], outcome["dropped"]) == (outcome["tracked"], 0)
        daemon.terminate()
        ids = stored_ids(daemon.db)
        assert len(ids) == len(set(ids)) == outcome["tracked"]
        assert list((workdir / "spool").rglob("*.spool")) == []
    finally:
        if app.poll() is None:
            app.kill()
            app.communicate()
        daemon.stop()
