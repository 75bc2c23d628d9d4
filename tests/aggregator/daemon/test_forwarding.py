"""Forwarding to a central PostgreSQL: real daemons, the session's real cluster.

Every test checks the same end state: the centre holds each event of the hosts exactly
once (ids and fields), and each host's central cursor is its last local sequence.
"""

from __future__ import annotations

import datetime as dt
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.aggregator.metrics.conftest import ingest_batches
from tests.support.daemon import DaemonProcess, make_events
from tests.support.postgres import PostgresCluster
from uptake.protocol import Event, ReportFilters
from uptake_aggregator.daemon.forwarder import CRASH_AFTER_COMMIT_ENV
from uptake_aggregator.metrics import build_report
from uptake_aggregator.store import open_store
from uptake_aggregator.store.postgres.connection import migrate
from uptake_cli.app import app

#: Retries every ~0.5 s at most: a test's outage of a few seconds sees several attempts.
_FAST_RETRY = ("--forward-backoff-max", "0.5")
_T0 = time.time_ns() // 1000 - 7_200_000_000


@pytest.fixture
def central(pg_url: str) -> str:
    """A fresh central store (its schema created, as `usage store init` does)."""
    migrate(pg_url)
    return pg_url


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start forwarding daemons in their own workdirs; all stopped at the end."""
    started: list[DaemonProcess] = []

    def start(name: str, url: str, *extra: str, env: dict[str, str] | None = None) -> DaemonProcess:
        workdir = tmp_path / name
        workdir.mkdir(exist_ok=True)
        daemon = DaemonProcess(
            workdir, "--no-adopt", *_FAST_RETRY, *extra, env={"UPTAKE_FORWARD": url, **(env or {})}
        )
        started.append(daemon)
        return daemon.start()

    yield start
    for daemon in started:
        daemon.stop()


def _wait_for(what: str, done: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _forward_status(daemon: DaemonProcess) -> dict[str, Any]:
    with daemon.client() as client:
        status: dict[str, Any] = client.status()["forward"]
    return status


def _caught_up(daemon: DaemonProcess, events: int) -> Callable[[], bool]:
    def done() -> bool:
        status = _forward_status(daemon)
        return status["cursor"] >= events and status["lag_events"] == 0

    return done


def _central_events(url: str) -> list[Event]:
    return list(open_store(url).read_events(None, None))


def _local_events(db: Path) -> list[Event]:
    return list(open_store(db).read_events(None, None))


def _host_cursors(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT host_id, cursor FROM hosts").fetchall())


def _local_cursor(db: Path) -> tuple[str, int, int]:
    """(host id, last sequence, stored forward cursor) of a local database."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        [(host,)] = conn.execute("SELECT value FROM meta WHERE name = 'host_id'")
        counters = dict(conn.execute("SELECT name, value FROM counters"))
    return host, counters["seq"], counters["forwarded"]


def _send(daemon: DaemonProcess, events: list[Event], batch: int = 500) -> None:
    with daemon.client() as client:
        for start in range(0, len(events), batch):
            client.send(events[start : start + batch])


def test_each_event_reaches_the_centre_once_and_the_lag_drains(
    central: str, postgres: PostgresCluster, daemons: Callable[..., DaemonProcess]
) -> None:
    daemon = daemons("host", central)
    events = make_events(3000, start=_T0)
    _send(daemon, events)
    _send(daemon, events[:700])  # resent by an SDK that lost its acks: stored once

    _wait_for("the centre to catch up", _caught_up(daemon, 3000))
    # Caught up, the forwarder folds the centre's events into its rollups (no report asked).
    _wait_for("the rollups to catch up", lambda: _forward_status(daemon)["folded_events"] == 3000)

    assert sorted(_central_events(central), key=lambda e: e.id) == sorted(
        events, key=lambda e: e.id
    )
    status = _forward_status(daemon)
    assert status["state"] == "caught_up" and status["lag_s"] == 0.0
    assert status["forwarded_events"] == 3000 and status["last_error"] is None
    shown = CliRunner().invoke(app, ["daemon", "status", "--socket", str(daemon.socket)])
    assert shown.exit_code == 0, shown.output
    assert "forward lag     0 events, 0s (caught up; cursor 3,000)" in shown.output
    assert ":***@" in shown.output and postgres.password not in shown.output
    assert daemon.terminate() == 0
    host, last, forwarded = _local_cursor(daemon.db)
    assert (last, forwarded) == (3000, 3000)
    assert _host_cursors(central) == {host: 3000}


def test_the_centre_stopped_while_the_app_tracks(
    central: str, postgres: PostgresCluster, daemons: Callable[..., DaemonProcess]
) -> None:
    """A few seconds down stands for any outage: the retry loop and the outbox are the
    same whatever its length (backoff is capped, here at 0.5 s, by default at 30 s), only
    the number of attempts and the backlog grow."""
    daemon = daemons("host", central)
    before, during = make_events(1000, start=_T0), make_events(4000, start=_T0 + 10**9)
    _send(daemon, before)
    _wait_for("the first events to reach the centre", _caught_up(daemon, 1000))
    postgres.stop()
    try:
        _send(daemon, during)  # acknowledged: ingest does not wait for the centre
        _wait_for("a failed attempt", lambda: _forward_status(daemon)["failed_attempts"] >= 2)
        status = _forward_status(daemon)
        assert status["state"] == "retrying" and status["lag_events"] == 4000
        assert status["last_error"]
        _wait_for("the lag in seconds to show", lambda: _forward_status(daemon)["lag_s"] > 0)
    finally:
        postgres.start()
    _wait_for("the backlog to drain", _caught_up(daemon, 5000))
    assert len(_central_events(central)) == 5000
    assert _forward_status(daemon)["state"] == "caught_up"
    log = daemon.log_text()
    assert "resumed after" in log


def test_the_centre_restarted_in_the_middle_of_a_chunk(
    central: str, postgres: PostgresCluster, daemons: Callable[..., DaemonProcess]
) -> None:
    import psycopg

    events = make_events(2000, start=_T0)
    # A session inserting (uncommitted) the 201st event makes the forwarder's first COPY
    # wait inside its transaction, on that id, after 200 of its events are inserted:
    # the restart below aborts both there.
    blocker = psycopg.connect(central)
    blocker.execute(
        "INSERT INTO events (id, ts, kind, host_id, seq) VALUES (%s, 0, 'login', 'blocker', 0)",
        (events[200].id,),
    )
    daemon = daemons("host", central, "--forward-chunk", "400")
    _send(daemon, events)
    _wait_for(
        "the forwarder to be inside its transaction",
        lambda: _waiting_on_lock(central),
    )
    postgres.stop("immediate")
    blocker.close()
    postgres.start()

    _wait_for("the backlog to drain", _caught_up(daemon, 2000))
    stored = _central_events(central)
    assert len(stored) == 2000 and {e.id for e in stored} == {e.id for e in events}
    assert list(_host_cursors(central).values()) == [2000]


def _waiting_on_lock(url: str) -> bool:
    import psycopg

    with psycopg.connect(url) as conn:
        [(waiting,)] = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'uptake'"
            " AND wait_event_type = 'Lock'"
        )
    return bool(waiting)


def test_a_kill_between_the_central_commit_and_the_local_cursor(
    central: str, daemons: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    events = make_events(1000, start=_T0)
    workdir = tmp_path / "host"
    workdir.mkdir()
    ingest_batches(workdir / "uptake.db", [events])  # the outbox, before forwarding starts
    crashing = DaemonProcess(
        workdir,
        "--no-adopt",
        "--forward-chunk",
        "300",
        env={"UPTAKE_FORWARD": central, CRASH_AFTER_COMMIT_ENV: "2"},
    )
    crashing.process = subprocess.Popen(crashing.command(), env=crashing.env)
    assert crashing.wait() == -signal.SIGKILL
    host, last, forwarded = _local_cursor(crashing.db)
    assert last == 1000 and forwarded < 600  # the centre has 600: the local write was lost
    assert _host_cursors(central) == {host: 600}

    again = daemons("host", central, "--forward-chunk", "300")
    _wait_for("the backlog to drain", _caught_up(again, 1000))
    stored = _central_events(central)
    assert len(stored) == 1000 and sorted(stored, key=lambda e: e.id) == sorted(
        events, key=lambda e: e.id
    )
    assert _host_cursors(central) == {host: 1000}


def test_a_wrong_password_or_no_server_is_one_log_line_and_ingest_goes_on(
    central: str, postgres: PostgresCluster, daemons: Callable[..., DaemonProcess]
) -> None:
    wrong = re.sub(r":[^:@/]+@", ":not-the-password@", central)
    unreachable = f"postgresql://uptake:secret-pw@127.0.0.1:{_free_port()}/uptake"
    hosts = {
        "password authentication failed": daemons("wrong", wrong),
        "refused": daemons("nowhere", unreachable),
    }
    for daemon in hosts.values():
        _send(daemon, make_events(200, start=_T0))
    for reason, daemon in hosts.items():
        _wait_for("retries", lambda d=daemon: _forward_status(d)["failed_attempts"] >= 3)
        status = _forward_status(daemon)
        assert status["state"] == "retrying" and status["lag_events"] == 200
        assert reason in status["last_error"]
        with daemon.client() as client:
            assert client.status()["events_stored"] == 200
        lines = [line for line in daemon.log_text().splitlines() if "forwarding to" in line]
        failures = [line for line in lines if "failed" in line]
        assert len(failures) == 1 and reason in failures[0]
        log = daemon.log_text()
        assert "not-the-password" not in log and "secret-pw" not in log and ":***@" in log


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_three_hosts_forward_into_one_centre(
    central: str, daemons: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    # Users spread over the hosts: user{k} is on host k % 3, and for k < 4 every other
    # event of theirs is on the next host (a user active on two servers). Fifty events
    # reach two hosts (retries that went elsewhere): the centre stores them once.
    hosts = [daemons(f"host{n}", central) for n in range(3)]
    everything = make_events(6000, start=_T0, users=12)
    sent: list[list[Event]] = [[], [], []]
    for i, event in enumerate(everything):
        k = int((event.user or "user0").removeprefix("user"))
        sent[(k + i % 2) % 3 if k < 4 else k % 3].append(event)
    sent[1] += sent[0][:50]
    for daemon, events in zip(hosts, sent, strict=True):
        _send(daemon, events)
    for daemon, events in zip(hosts, sent, strict=True):
        _wait_for("each host to catch up", _caught_up(daemon, len(events)))

    union = {event.id: event for events in sent for event in events}
    stored = _central_events(central)
    assert len(stored) == len(union) == len(everything)
    assert {event.id: event for event in stored} == union
    for daemon in hosts:
        assert daemon.terminate() == 0
    expected = {}
    for daemon, events in zip(hosts, sent, strict=True):
        host, last, forwarded = _local_cursor(daemon.db)
        assert last == forwarded == len(events)
        expected[host] = last
    assert _host_cursors(central) == expected
    assert sum(len(_local_events(daemon.db)) for daemon in hosts) == sum(map(len, sent))

    # The central report is the report of one database holding every host's events.
    union_db = tmp_path / "union.db"
    ingest_batches(union_db, [everything])
    today = dt.datetime.fromtimestamp(_T0 / 1e6, dt.UTC).date() + dt.timedelta(days=1)
    assert build_report(central, ReportFilters(), today=today) == build_report(
        union_db, ReportFilters(), today=today
    )


def test_an_event_the_centre_refuses_is_named_once_and_the_rest_is_stored(
    central: str, daemons: Callable[..., DaemonProcess]
) -> None:
    import msgspec

    daemon = daemons("host", central)
    events = make_events(10, start=_T0)
    events[4] = msgspec.structs.replace(events[4], name="bad\x00name")  # PostgreSQL: no NUL
    _send(daemon, events)

    _wait_for("the centre to catch up", _caught_up(daemon, 10))
    assert {e.id for e in _central_events(central)} == {e.id for e in events} - {events[4].id}
    assert _forward_status(daemon)["dead_letters"] == 1
    named = [line for line in daemon.log_text().splitlines() if events[4].id.hex() in line]
    assert len(named) == 1 and "dead_letters" in named[0]
