"""Process lifecycle: SIGTERM drains, kill -9 loses nothing acknowledged, sockets and pidfiles."""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import (
    DaemonProcess,
    RawConnection,
    make_events,
    running_daemon,
    stored_ids,
)
from uptake.client import DaemonClient, DaemonError
from uptake.protocol import Ack, Batch, ErrorFrame, Event, Welcome
from uptake_aggregator.daemon.lifecycle import running_pid


def test_sigterm_drains_received_batches(fresh_daemon: DaemonProcess) -> None:
    daemon = fresh_daemon.start()
    batches = [make_events(1000, start=1_700_000_000_000_000 + k * 10**10) for k in range(40)]
    first_ack = threading.Event()

    def send_all(raw: RawConnection) -> None:
        with contextlib.suppress(OSError):
            for seq, batch in enumerate(batches):
                raw.send(Batch(seq=seq, events=batch))
                if seq == 5:
                    first_ack.wait(10)

    with RawConnection(daemon.socket) as raw:
        assert isinstance(raw.hello(), Welcome)
        sender = threading.Thread(target=send_all, args=(raw,))
        sender.start()
        answers = [raw.receive()]
        first_ack.set()
        # Stop while batches are in flight: what was received is committed and acked.
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGTERM)
        answers += raw.receive_all()
        sender.join(10)
    assert daemon.wait() == 0
    acked = [a.seq for a in answers if isinstance(a, Ack)]
    assert acked == list(range(len(acked)))  # in order, none skipped
    assert not [a for a in answers if isinstance(a, ErrorFrame)]
    stored = collections.Counter(stored_ids(daemon.db))
    expected = {event.id for seq in acked for event in batches[seq]}
    # Every acked event is stored, and nothing was stored without its ack being sent.
    assert set(stored) == expected
    assert max(stored.values()) == 1
    assert not daemon.socket.exists()
    assert not daemon.pidfile.exists()


def test_kill_9_mid_ingest_loses_nothing_acknowledged(fresh_daemon: DaemonProcess) -> None:
    daemon = fresh_daemon.start()
    clients = 4
    sent: list[list[list[Event]]] = [[] for _ in range(clients)]
    acked: list[list[list[Event]]] = [[] for _ in range(clients)]
    enough = threading.Semaphore(0)

    def produce(index: int) -> None:
        with contextlib.suppress(DaemonError, OSError), daemon.client(timeout=10) as client:
            for k in range(10_000):
                batch = make_events(200, start=1_700_000_000_000_000 + (index * 10**6 + k) * 10**6)
                sent[index].append(batch)
                client.send(batch)
                acked[index].append(batch)
                enough.release()

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for _ in range(40):
        assert enough.acquire(timeout=30)
    daemon.kill()  # SIGKILL: no drain, no cleanup, pidfile and socket left behind
    for thread in threads:
        thread.join(30)
    assert daemon.socket.exists()

    daemon.start()  # replaces the stale socket and pidfile
    counts = collections.Counter(stored_ids(daemon.db))
    acked_ids = [event.id for per_client in acked for batch in per_client for event in batch]
    assert len(acked_ids) >= 40 * 200
    assert all(counts[event_id] == 1 for event_id in acked_ids)

    # Clients retry what was not acknowledged (and, harmlessly, what was): all stored once.
    with daemon.client() as client:
        for per_client in sent:
            for batch in per_client:
                client.send(batch)
    counts = collections.Counter(stored_ids(daemon.db))
    every_id = {event.id for per_client in sent for batch in per_client for event in batch}
    assert set(counts) == every_id
    assert max(counts.values()) == 1
    with daemon.client() as client:
        assert client.status()["events_stored"] == len(every_id)


def test_stale_socket_file_is_replaced(fresh_daemon: DaemonProcess) -> None:
    # A socket file nobody listens on, as a crashed daemon leaves behind.
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(fresh_daemon.socket))
    leftover.close()
    assert fresh_daemon.socket.exists()
    daemon = fresh_daemon.start()
    with daemon.client() as client:
        assert client.send(make_events(5)).accepted == 5
    assert "stale socket" in daemon.log_text()


def test_live_daemon_socket_is_never_stolen(fresh_daemon: DaemonProcess, short_tmp: Path) -> None:
    first = fresh_daemon.start()
    second = DaemonProcess(first.workdir, db=short_tmp / "other.db")
    assert second.socket == first.socket
    second.process = subprocess.Popen(second.command(), stderr=subprocess.PIPE)
    _, err = second.process.communicate(timeout=30)
    assert second.process.returncode == 1
    assert "already running" in err.decode()
    with first.client() as client:
        assert client.send(make_events(3)).accepted == 3
    assert first.process is not None and running_pid(first.socket) == first.process.pid


def test_foreign_listener_is_never_stolen(short_tmp: Path) -> None:
    daemon = DaemonProcess(short_tmp)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(daemon.socket))
        listener.listen()
        daemon.process = subprocess.Popen(daemon.command(), stderr=subprocess.PIPE)
        _, err = daemon.process.communicate(timeout=30)
        assert daemon.process.returncode == 1
        assert "another daemon is listening" in err.decode()
        # The other program's socket still works.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.connect(str(daemon.socket))


@pytest.fixture
def cli_env(short_tmp: Path) -> Iterator[dict[str, str]]:
    env = dict(os.environ)
    env.update(
        UPTAKE_SOCKET=str(short_tmp / "cli.sock"),
        UPTAKE_DB=str(short_tmp / "cli.db"),
        UPTAKE_LOG_DIR=str(short_tmp / "log"),
    )
    yield env
    # Whatever happened, leave no daemon behind.
    pid = running_pid(short_tmp / "cli.sock")
    if pid is not None:
        os.kill(pid, signal.SIGKILL)


def _usage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "uptake_cli", *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_start_status_stop(cli_env: dict[str, str]) -> None:
    started = _usage(cli_env, "daemon", "start")
    assert started.returncode == 0, started.stderr
    assert "started" in started.stdout
    socket_path = Path(cli_env["UPTAKE_SOCKET"])
    pid = running_pid(socket_path)
    assert pid is not None
    assert "already running" in _usage(cli_env, "daemon", "start").stdout

    with DaemonClient(socket_path) as client:
        client.send(make_events(25))
    status = _usage(cli_env, "daemon", "status")
    assert status.returncode == 0, status.stderr
    assert "events stored   25" in status.stdout
    assert (Path(cli_env["UPTAKE_LOG_DIR"]) / "uptaked.log").exists()

    stopped = _usage(cli_env, "daemon", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert f"pid {pid}" in stopped.stdout
    assert running_pid(socket_path) is None
    assert not socket_path.exists()
    down = _usage(cli_env, "daemon", "status")
    assert down.returncode == 1
    assert "no uptake daemon is running" in down.stderr


def test_python_m_entry_point_runs_in_foreground(short_tmp: Path) -> None:
    with running_daemon(short_tmp) as daemon, daemon.client() as client:
        assert client.status()["db"] == str(daemon.db)


def test_start_failure_is_one_clear_line(short_tmp: Path) -> None:
    daemon = DaemonProcess(short_tmp, db=Path("/proc/no-such-dir/uptake.db"))
    daemon.process = subprocess.Popen(daemon.command(), stderr=subprocess.PIPE, text=True)
    _, err = daemon.process.communicate(timeout=30)
    assert daemon.process.returncode == 1
    assert "/proc/no-such-dir" in err
    assert "Traceback" not in err
    assert not daemon.socket.exists()


def test_one_daemon_per_database(fresh_daemon: DaemonProcess, short_tmp: Path) -> None:
    """A second daemon on the same database, on another socket, is refused in one line."""
    first = fresh_daemon.start()
    other = short_tmp / "other"
    other.mkdir()
    second = DaemonProcess(other, db=first.db)
    second.process = subprocess.Popen(second.command(), stderr=subprocess.PIPE, text=True)
    _, err = second.process.communicate(timeout=30)
    assert second.process.returncode == 1
    assert str(first.socket) in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    with first.client() as client:  # the first one is unharmed
        client.ping()
    first.kill()  # a kill -9 leaves the lock file behind, unlocked: not a daemon any more
    second.start()
    second.stop()
