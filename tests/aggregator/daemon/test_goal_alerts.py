"""Edge-triggered goal alerts from a real daemon (docs/metrics.md, "Goals and alerts").

The SDK's ``record()`` feeds events with explicit timestamps over simulated past days;
the daemon's report window (the 30 days ending tomorrow) holds them all. Account acme has
3 seats and the goal ``utilization >= 1``: with one active user it is critical, stays so
across evaluations (one alert), and recovers once two more users log in (one more).
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import uptake
from tests.support.daemon import DaemonProcess, make_events
from uptake.protocol import Event
from uptake_aggregator.store import open_store

DAY_US = 86_400_000_000


def _days_ago(days: int, minute: int = 0) -> int:
    return time.time_ns() // 1000 - days * DAY_US + minute * 60_000_000


def _feed(socket: Path, events: list[Event]) -> None:
    """Send ``events`` through the SDK's ``record()`` and wait for the daemon's acks."""
    client = uptake.Client(socket=str(socket), spool=False, flush_interval=0.05)
    try:
        for event in events:
            client.record(event)
        assert client.flush(timeout=20.0)
    finally:
        client.shutdown(timeout=5.0)


def _logins(user: str, days: range) -> list[Event]:
    return [
        Event(id=b"", ts=_days_ago(day), kind="login", user=user, account="acme") for day in days
    ]


class _Hook(http.server.BaseHTTPRequestHandler):
    """Records each POSTed body; when the server's ``hold`` is set, hangs until released."""

    def do_POST(self) -> None:
        server: Any = self.server
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with server.arrived:
            server.bodies.append(json.loads(body))
            server.arrived.notify_all()
        server.release.wait(60.0)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[Any]:
    """An HTTP server on 127.0.0.1 that records POSTs (set ``release`` unless it should hang)."""
    server: Any = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.daemon_threads = True
    server.bodies = []
    server.arrived = threading.Condition()
    server.release = threading.Event()
    server.release.set()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


def _config(path: Path, *, webhook: str, out: Path, extra: str = "") -> Path:
    command = [
        sys.executable,
        "-c",
        f"import sys; open({str(out)!r}, 'a').write(sys.stdin.read() + '\\n')",
    ]
    path.write_text(
        '[[goal]]\nmetric = "utilization"\nscope = "account"\ntarget = 1.0\n\n'
        f'[alerts]\nevery = "1s"\ncommand = {json.dumps(command)}\nwebhook = "{webhook}"\n'
        f'webhook_timeout = "2s"\n{extra}'
    )
    return path


def _goals_status(daemon: DaemonProcess) -> dict[str, Any]:
    with daemon.client() as client:
        goals: dict[str, Any] = client.status()["goals"]
        return goals


def _wait_for(daemon: DaemonProcess, **at_least: int) -> dict[str, Any]:
    """Poll the daemon's status until each goals counter reaches ``at_least`` (or fail)."""
    deadline = time.monotonic() + 60.0
    while True:
        goals = _goals_status(daemon)
        if all(goals[name] >= count for name, count in at_least.items()):
            return goals
        assert time.monotonic() < deadline, f"goals status stuck at {goals}:\n{daemon.log_text()}"
        time.sleep(0.1)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def start_daemon(short_tmp: Path) -> Iterator[Any]:
    started: list[DaemonProcess] = []

    def start(config: Path) -> DaemonProcess:
        process = DaemonProcess(short_tmp, "--config", str(config))
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


def test_critical_holds_then_recovers_one_alert_each(
    start_daemon: Any, short_tmp: Path, webhook: Any
) -> None:
    out = short_tmp / "alerts.jsonl"
    hook = f"http://127.0.0.1:{webhook.server_address[1]}/hook"
    daemon = start_daemon(_config(short_tmp / "uptake.toml", webhook=hook, out=out))
    seats = Event(id=b"", ts=_days_ago(12), kind="seats", account="acme", value=3)
    _feed(daemon.socket, [seats, *_logins("u1", range(10, 5, -1))])  # days -10..-6
    first = _wait_for(daemon, changes=1)
    # Several more evaluations while acme stays critical: nothing new.
    held = _wait_for(daemon, evaluations=first["evaluations"] + 3)
    assert held["changes"] == 1
    _feed(daemon.socket, _logins("u2", range(3, 0, -1)) + _logins("u3", range(3, 0, -1)))
    recovered = _wait_for(daemon, changes=2)
    _wait_for(daemon, evaluations=recovered["evaluations"] + 2)
    assert _goals_status(daemon)["changes"] == 2

    log = open_store(daemon.db).alert_log().changes()
    assert [(c.goal, c.subject, c.before, c.after) for c in log] == [
        ("account.utilization >= 1", "acme", None, "critical"),
        ("account.utilization >= 1", "acme", "critical", "met"),
    ]
    assert log[0].value == pytest.approx(1 / 3) and log[1].value == 1.0
    deadline = time.monotonic() + 30.0
    while (len(_lines(out)), len(webhook.bodies)) != (2, 2):
        assert time.monotonic() < deadline, (_lines(out), webhook.bodies)
        time.sleep(0.05)
    for delivered in (_lines(out), webhook.bodies):
        assert [(m["subject"], m["from"], m["to"], m["target"]) for m in delivered] == [
            ("acme", None, "critical", 1.0),
            ("acme", "critical", "met", 1.0),
        ]
    # The same table decides for `usage check --record`: nothing new to announce.
    check = subprocess.run(
        [sys.executable, "-m", "uptake_cli", "check", "--record", "--config",
         str(short_tmp / "uptake.toml"), "--socket", str(daemon.socket)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert "recorded 0 status changes" in check.stderr
    assert len(open_store(daemon.db).alert_log().changes()) == 2


def test_a_hanging_webhook_delays_neither_ingest_nor_reports(
    start_daemon: Any, short_tmp: Path, webhook: Any
) -> None:
    webhook.release.clear()  # every POST hangs until the end of the test
    out = short_tmp / "alerts.jsonl"
    hook = f"http://127.0.0.1:{webhook.server_address[1]}/hook"
    config = _config(
        short_tmp / "uptake.toml", webhook=hook, out=out, extra='webhook_timeout = "60s"\n'
    )
    config.write_text(config.read_text().replace('webhook_timeout = "2s"\n', ""))
    daemon = start_daemon(config)
    seats = Event(id=b"", ts=_days_ago(5), kind="seats", account="acme", value=3)
    _feed(daemon.socket, [seats, *_logins("u1", range(4, 0, -1))])
    with webhook.arrived:
        assert webhook.arrived.wait_for(lambda: webhook.bodies, timeout=60.0)
    # The webhook now holds its POST: ingest, reports and the next evaluations go on.
    with daemon.client() as client:
        ack = client.send(make_events(200, start=_days_ago(2)))
        assert ack.accepted == 200
        assert client.query("usage")["product"]["active_users"] >= 1
    before = _goals_status(daemon)["evaluations"]
    _wait_for(daemon, evaluations=before + 2)
    assert len(_lines(out)) == 1  # the command got its alert regardless


def test_a_refused_webhook_is_retried_and_logged(start_daemon: Any, short_tmp: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = short_tmp / "alerts.jsonl"
    config = _config(
        short_tmp / "uptake.toml", webhook=f"http://127.0.0.1:{port}/", out=out,
        extra='webhook_retries = 2\nretry_wait = "50ms"\n',
    )  # fmt: skip
    daemon = start_daemon(config)
    seats = Event(id=b"", ts=_days_ago(5), kind="seats", account="acme", value=3)
    _feed(daemon.socket, [seats, *_logins("u1", range(4, 0, -1))])
    _wait_for(daemon, changes=1)
    deadline = time.monotonic() + 30.0
    while "giving up after 3 attempts" not in daemon.log_text():
        assert time.monotonic() < deadline, daemon.log_text()
        time.sleep(0.05)
    assert daemon.log_text().count("failed (attempt") == 3
    with daemon.client() as client:
        assert client.send(make_events(10, start=_days_ago(1))).accepted == 10
    assert len(_lines(out)) == 1


def test_a_bad_config_stops_the_daemon_at_start(short_tmp: Path) -> None:
    config = short_tmp / "uptake.toml"
    config.write_text('[[goal]]\nmetric = "utilization"\nscope = "acount"\ntarget = 1\n')
    daemon = DaemonProcess(short_tmp, "--config", str(config))
    with pytest.raises(AssertionError, match=r"uptake.toml:3: \[\[goal\]\] #1 scope"):
        daemon.start()
    cli = subprocess.run(
        [sys.executable, "-m", "uptake_cli", "daemon", "start", "--config", str(config),
         "--socket", str(daemon.socket), "--db", str(daemon.db)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert cli.returncode == 2
    assert "scope: 'acount' is not a scope; accepted: product, account, feature" in cli.stderr
    assert not daemon.socket.exists()
