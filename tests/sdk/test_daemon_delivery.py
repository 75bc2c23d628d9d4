"""Delivery when the daemon misbehaves: spool, replay in order, none lost, none duplicated."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import uptake
from tests.sdk.conftest import ClientFactory
from tests.sdk.fake_daemon import FakeDaemon
from uptake._daemon_delivery import _WINDOW, _WINDOW_BYTES, Backoff


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes (no timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def spool_files(spool_dir: Path) -> list[Path]:
    return sorted(spool_dir.rglob("*.spool")) if spool_dir.exists() else []


def track_numbered(client: uptake.Client, start: int, stop: int) -> None:
    for number in range(start, stop):
        client.track(f"f{number}", n=number)


def assert_exactly_once_in_order(daemon: FakeDaemon, count: int) -> None:
    features = daemon.features()
    assert sorted(features, key=lambda name: int(name[1:])) == [f"f{n}" for n in range(count)]
    assert len(set(features)) == count
    assert features == [f"f{n}" for n in range(count)], "replay must keep the order"


@pytest.mark.parametrize("mode", ["refuse", "stall", "close_mid_batch"])
def test_misbehaving_daemon_spools_then_replays_everything_once(
    daemon: FakeDaemon, make_client: ClientFactory, spool_dir: Path, mode: str
) -> None:
    client = make_client(max_batch=50, ack_timeout=0.3)
    track_numbered(client, 0, 100)
    assert client.flush(5.0)
    daemon.mode = mode
    track_numbered(client, 100, 250)
    # flush() keeps delivering until its deadline: a long one only waits longer here.
    assert not client.flush(0.3), "nothing after the change is acknowledged"
    assert wait_until(lambda: client.stats().spooled == 150)
    assert spool_files(spool_dir)
    assert len(daemon.events()) == 100
    daemon.mode = "ok"
    track_numbered(client, 250, 300)
    assert wait_until(lambda: client.flush(1.0) and len(daemon.events()) == 300)
    assert_exactly_once_in_order(daemon, 300)
    stats = client.stats()
    assert stats.replayed == stats.spooled >= 150
    assert stats.failed >= 1 and stats.dropped == 0
    assert spool_files(spool_dir) == []


def test_a_lost_ack_is_resent_and_deduplicated(
    daemon: FakeDaemon, make_client: ClientFactory
) -> None:
    client = make_client(max_batch=20)
    daemon.mode = "ack_then_close"
    track_numbered(client, 0, 20)
    assert not client.flush(0.3), "no Ack came: not acknowledged"
    assert wait_until(lambda: client.stats().spooled == 20)
    daemon.mode = "ok"
    assert client.flush(5.0)
    assert client.stats().replayed == 20
    assert_exactly_once_in_order(daemon, 20)
    # Each retry while the Acks were lost stored nothing new: the daemon dropped them by id.
    assert daemon.duplicates >= 20
    assert client.stats().duplicates == 20


def test_daemon_down_at_start_then_up(daemon: FakeDaemon, make_client: ClientFactory) -> None:
    daemon.stop()
    client = make_client(max_batch=10)
    track_numbered(client, 0, 35)
    assert not client.flush(0.3), "spooled is not acknowledged"
    assert client.stats().spooled == 35
    daemon.start()
    track_numbered(client, 35, 40)
    assert wait_until(lambda: client.flush(1.0) and len(daemon.events()) == 40)
    assert_exactly_once_in_order(daemon, 40)


def test_daemon_restart_mid_stream_loses_nothing(
    daemon: FakeDaemon, make_client: ClientFactory
) -> None:
    client = make_client(max_batch=25)
    track_numbered(client, 0, 100)
    assert client.flush(5.0)
    daemon.stop()
    track_numbered(client, 100, 200)
    assert not client.flush(0.3), "spooled is not acknowledged"
    daemon.start()
    track_numbered(client, 200, 300)
    assert wait_until(lambda: client.flush(1.0) and len(daemon.events()) == 300)
    assert_exactly_once_in_order(daemon, 300)


def test_a_refused_event_is_isolated_and_the_rest_stored(
    daemon: FakeDaemon, make_client: ClientFactory
) -> None:
    daemon.refuse_names = {"f13"}
    client = make_client(max_batch=40)
    track_numbered(client, 0, 40)
    assert client.flush(5.0)
    stored = daemon.features()
    assert sorted(stored) == sorted(f"f{n}" for n in range(40) if n != 13)
    assert client.stats().rejected_by_reason == {"refused_by_daemon": 1}


def test_orphaned_spool_of_another_client_is_replayed(
    daemon: FakeDaemon, make_client: ClientFactory, spool_dir: Path
) -> None:
    daemon.stop()
    first = make_client(max_batch=10)
    track_numbered(first, 0, 30)
    assert not first.shutdown(0.3)  # releases its spool lock, like a process that exited
    assert spool_files(spool_dir)
    daemon.start()
    second = make_client(max_batch=10)
    assert wait_until(lambda: second.flush(1.0) and len(daemon.events()) == 30)
    assert_exactly_once_in_order(daemon, 30)
    assert spool_files(spool_dir) == []


def test_a_live_writers_spool_is_not_replayed_by_others(
    daemon: FakeDaemon, make_client: ClientFactory, spool_dir: Path
) -> None:
    daemon.stop()
    writer = make_client(max_batch=10)
    track_numbered(writer, 0, 10)
    assert not writer.flush(0.3)
    # Keep the writer from reconnecting (and replaying its own file) during the check.
    writer.processor._delivery.backoff.next_attempt = math.inf  # type: ignore[attr-defined]
    daemon.start()
    other = make_client()
    other.track("other")
    assert other.flush(2.0)
    assert daemon.features() == ["other"]  # the writer still holds its file's lock
    writer.processor._delivery.backoff.next_attempt = 0.0  # type: ignore[attr-defined]
    assert wait_until(lambda: writer.flush(1.0) and len(daemon.events()) == 11)


def test_spool_is_bounded_in_bytes(daemon: FakeDaemon, make_client: ClientFactory) -> None:
    daemon.stop()
    client = make_client(max_batch=10, spool_max_bytes=2000)
    track_numbered(client, 0, 200)
    assert not client.flush(0.3)

    def settled() -> bool:  # every event spooled or dropped as spool_full
        stats = client.stats()
        return stats.spooled + stats.dropped_by_reason.get("spool_full", 0) == 200

    # The worker spools a batch once its send fails, on its own clock, not flush's.
    assert wait_until(settled)
    stats = client.stats()
    assert 0 < stats.spooled < 200


def test_without_spool_batches_wait_in_memory(
    daemon: FakeDaemon, make_client: ClientFactory, spool_dir: Path
) -> None:
    daemon.stop()
    client = make_client(spool=False, max_batch=10, max_queue=50)
    track_numbered(client, 0, 40)
    assert not client.flush(0.3), "nothing durable yet: memory only"
    daemon.start()
    assert wait_until(lambda: client.flush(1.0) and len(daemon.events()) == 40)
    assert_exactly_once_in_order(daemon, 40)
    assert not spool_dir.exists()


def test_unwritable_spool_dir_drops_and_counts(
    daemon: FakeDaemon, make_client: ClientFactory, tmp_path: Path
) -> None:
    daemon.stop()
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    client = make_client(spool_dir=blocker / "spool", max_batch=10)
    track_numbered(client, 0, 10)
    assert client.flush(2.0)
    assert client.stats().dropped_by_reason == {"spool_error": 10}


def test_tcp_with_token(sock_dir: Path, spool_dir: Path) -> None:
    token_file = sock_dir / "token"
    token_file.write_text("s3cret\n")
    with FakeDaemon("tcp://127.0.0.1:0", token="s3cret").start() as fake:
        client = uptake.Client(socket=fake.address, token_file=token_file, spool_dir=spool_dir)
        client.track("over_tcp")
        assert client.flush(5.0)
        assert fake.features() == ["over_tcp"]
        assert fake.hellos[0].token == "s3cret"
        wrong = uptake.Client(socket=fake.address, token="nope", spool_dir=spool_dir)
        wrong.track("refused")
        assert not wrong.flush(0.3)
        assert wrong.stats().spooled == 1 and fake.features() == ["over_tcp"]
        client.shutdown(1.0)
        wrong.shutdown(1.0)


def test_reconnects_back_off(daemon: FakeDaemon, make_client: ClientFactory) -> None:
    daemon.stop()
    client = make_client(flush_interval=0.01)
    client.track("x")
    assert not client.flush(0.05)
    time.sleep(0.3)  # ~30 flush intervals: without backoff, ~30 connection attempts
    failed = client.stats().failed
    assert 1 <= failed <= 6


def test_without_spool_flush_waits_for_the_daemon(
    daemon: FakeDaemon, make_client: ClientFactory
) -> None:
    daemon.stop()
    client = make_client(spool=False, max_batch=10)
    track_numbered(client, 0, 20)
    assert not client.flush(0.3), "nothing durable yet: memory only"
    restart = threading.Timer(0.2, daemon.start)
    restart.start()
    try:
        assert client.flush(10.0)
    finally:
        restart.join()
    assert_exactly_once_in_order(daemon, 20)


def test_without_spool_shutdown_counts_what_is_lost(
    daemon: FakeDaemon, make_client: ClientFactory
) -> None:
    daemon.stop()
    client = make_client(spool=False, max_batch=10)
    track_numbered(client, 0, 20)
    assert not client.shutdown(0.3)
    assert client.stats().dropped_by_reason == {"exit": 20}


def test_spools_of_different_daemons_stay_apart(
    daemon: FakeDaemon, make_client: ClientFactory, sock_dir: Path
) -> None:
    daemon.stop()
    first = make_client(max_batch=10)
    track_numbered(first, 0, 10)
    assert not first.shutdown(0.3)  # its spool is now an orphan, meant for `daemon`
    with FakeDaemon(str(sock_dir / "other.sock")).start() as other:
        second = make_client(socket=other.address)
        second.track("for_other")
        assert second.flush(2.0)
        assert other.features() == ["for_other"]
    daemon.start()
    third = make_client()
    assert wait_until(lambda: third.flush(1.0) and len(daemon.events()) == 10)
    assert_exactly_once_in_order(daemon, 10)


def test_flush_from_the_worker_thread_does_not_wait(spool_dir: Path) -> None:
    answers: list[bool] = []

    class FlushingSink:
        def write(self, events: list[object]) -> None:
            answers.append(client.flush(30.0))  # e.g. a logging handler calling flush()

    client = uptake.Client(sink=FlushingSink(), spool_dir=spool_dir)
    client.track("x")
    assert client.flush(5.0)
    assert answers == [False]
    client.shutdown(1.0)


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    backoff = Backoff(base=0.1, cap=1.0)
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    for ceiling in ceilings:
        delay = backoff.failed()
        assert ceiling / 2 <= delay <= ceiling
        assert not backoff.ready()
    backoff.succeeded()
    assert backoff.ready()
    assert backoff.failed() <= 0.1  # back to the base delay
    delays = {Backoff(base=0.1).failed() for _ in range(20)}
    assert len(delays) > 1, "jittered: clients do not retry in lockstep"


def test_a_daemon_restart_while_idle_costs_a_reconnect_not_a_spool(
    daemon: FakeDaemon, make_client: ClientFactory
) -> None:
    client = make_client()
    track_numbered(client, 0, 10)
    assert client.flush(5.0)
    daemon.stop()
    daemon.start()
    track_numbered(client, 10, 20)
    assert client.flush(5.0)
    assert_exactly_once_in_order(daemon, 20)
    stats = client.stats()
    assert (stats.spooled, stats.failed) == (0, 0)


@pytest.mark.parametrize("spool", [True, False])
@pytest.mark.parametrize("mode", ["stall", "close_mid_batch"])
def test_batches_built_ahead_are_kept_in_order_when_the_daemon_fails(
    daemon: FakeDaemon, make_client: ClientFactory, spool: bool, mode: str
) -> None:
    # Many small batches: the worker stages most of them while the first are in flight.
    client = make_client(max_batch=10, ack_timeout=0.3, spool=spool, max_queue=5000)
    daemon.mode = mode
    track_numbered(client, 0, 400)
    # The first failure, then two more while the kept batches are resent (a second
    # failure must keep the order too): waited for, not slept for.
    assert wait_until(lambda: client.stats().failed >= 3)
    stats = client.stats()
    assert stats.dropped == 0 and stats.sent + stats.spooled + stats.queued <= 400
    daemon.mode = "ok"
    track_numbered(client, 400, 450)
    assert wait_until(lambda: client.flush(1.0) and len(daemon.events()) == 450)
    assert_exactly_once_in_order(daemon, 450)
    assert client.stats().queued == 0


@pytest.mark.parametrize("prop_chars", [10, 190])
def test_unacknowledged_batches_stay_within_the_window(
    daemon: FakeDaemon, make_client: ClientFactory, prop_chars: int
) -> None:
    # _WINDOW batches, and never much over _WINDOW_BYTES of them, wait for acks at once:
    # large events fill the window by bytes before they fill it by count.
    daemon.mode = "stall"
    client = make_client(max_batch=1000, ack_timeout=30.0, spool=False, max_queue=60_000)
    props = {f"p{index}": str(index) * prop_chars for index in range(6)}
    for number in range(40_000):
        client.track("f", n=number, **props)

    def stalled_bytes() -> int:
        return sum(daemon.stalled)

    assert wait_until(lambda: len(daemon.stalled) >= _WINDOW or stalled_bytes() >= _WINDOW_BYTES)
    time.sleep(0.3)  # a worker that ignored the window would send more meanwhile
    largest = max(daemon.stalled)
    assert len(daemon.stalled) <= _WINDOW
    assert stalled_bytes() < _WINDOW_BYTES + largest
    if prop_chars > 100:
        assert len(daemon.stalled) < _WINDOW
