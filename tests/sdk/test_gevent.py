"""The SDK in a gevent host (``monkey.patch_all()``): delivers, and never blocks the hub.

gevent turns the SDK's worker thread, locks, sleeps and sockets into greenlets and
cooperative waits. Each case runs in a fresh interpreter, since monkey-patching must come
before anything imports ``threading`` or ``socket``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess, stored_ids

pytestmark = pytest.mark.slow

_HOST = textwrap.dedent(
    """
    from gevent import monkey
    monkey.patch_all()
    import json, sys, time
    import gevent
    import uptake

    socket_path, spool, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
    uptake.configure(app="gevent-host", socket=socket_path, spool_dir=spool,
                     flush_interval=0.05, max_batch=500)
    ticks = []

    def ticker():  # another greenlet: its gaps show whether the hub was ever blocked
        for _ in range(30):
            ticks.append(time.monotonic())
            gevent.sleep(0.01)

    def handler(number):  # a request handler tracking in a loop
        for index in range(1000):
            uptake.track("feature_%d" % (index % 7), user="u%d" % number)
            if index % 100 == 0:
                gevent.sleep(0)

    clock = gevent.spawn(ticker)
    gevent.joinall([gevent.spawn(handler, number) for number in range(10)])
    flushed = uptake.flush(timeout=timeout)
    clock.join()
    stats = uptake.stats()
    uptake.shutdown(timeout=timeout / 2)
    print(json.dumps({
        "flushed": flushed, "sent": stats.sent, "spooled": stats.spooled,
        "dropped": stats.dropped,
        "max_gap": max(b - a for a, b in zip(ticks, ticks[1:])),
    }))
    """
)


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="upg", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _run_host(socket_path: Path, spool: Path, timeout: float) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _HOST, str(socket_path), str(spool), str(timeout)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    outcome: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return outcome


def test_a_gevent_host_delivers_every_event_once(workdir: Path) -> None:
    daemon = DaemonProcess(workdir)
    try:
        daemon.start()
        outcome = _run_host(daemon.socket, workdir / "spool", timeout=10.0)
        ids = stored_ids(daemon.db)
    finally:
        daemon.stop()
    assert outcome["flushed"] is True
    assert (outcome["sent"], outcome["dropped"]) == (10_000, 0)
    assert len(ids) == len(set(ids)) == 10_000
    assert outcome["max_gap"] < 1.0  # the hub kept running (10 ms ticks; noisy machine)


def test_a_gevent_host_without_a_daemon_spools_and_is_not_blocked(workdir: Path) -> None:
    # flush() keeps retrying until its timeout, in the worker greenlet: the hub keeps running.
    outcome = _run_host(workdir / "no-daemon.sock", workdir / "spool", timeout=1.0)
    assert (outcome["spooled"], outcome["dropped"]) == (10_000, 0)
    assert outcome["flushed"] is False  # in the spool, not acknowledged
    assert outcome["max_gap"] < 1.0
