"""Test helpers: a real daemon in a subprocess, a raw protocol connection, event makers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from uptake.client import DaemonClient, DaemonError
from uptake.paths import pidfile_path
from uptake.protocol import (
    PROTOCOL_VERSION,
    Event,
    FrameBuffer,
    Hello,
    Message,
    decode_message,
    encode_frame,
    new_event_ids,
)
from uptake_aggregator.store.sqlite.storage import connect_readonly

__all__ = [
    "DaemonProcess",
    "RawConnection",
    "daemon_command",
    "make_events",
    "stored_ids",
]

_T0 = time.time_ns() // 1000 - 3_600_000_000  # an hour ago: well inside "not in the future"


def daemon_command(socket: Path, db: Path, log: Path, *extra: str) -> list[str]:
    """The command line of a real daemon in the foreground: every test starts it this way."""
    return [
        sys.executable,
        "-m",
        "uptake_aggregator",
        "--foreground",
        "--quiet",
        "--socket",
        str(socket),
        "--db",
        str(db),
        "--log-file",
        str(log),
        *extra,
    ]


class DaemonProcess:
    """``python -m uptake_aggregator --foreground`` on a tmp socket and db."""

    def __init__(
        self,
        workdir: Path,
        *extra: str,
        db: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.socket = workdir / "d.sock"
        self.db = db or workdir / "uptake.db"
        self.log = workdir / "daemon.log"
        self.token_file = workdir / "token"
        self.extra = list(extra)
        self.process: subprocess.Popen[bytes] | None = None
        # The default spool root (which the daemon adopts from) under the workdir: never
        # the real user's cache dir.
        self.env = {**os.environ, "XDG_CACHE_HOME": str(workdir / "cache"), **(env or {})}

    @property
    def pidfile(self) -> Path:
        return pidfile_path(self.socket)

    def command(self) -> list[str]:
        return daemon_command(
            self.socket, self.db, self.log, "--token-file", str(self.token_file), *self.extra
        )

    def start(self, wait: float = 20.0) -> DaemonProcess:
        """Start and wait until the daemon answers a status query."""
        self.process = subprocess.Popen(
            self.command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env
        )
        deadline = time.monotonic() + wait
        while True:
            if self.process.poll() is not None:
                _out, err = self.process.communicate()
                raise AssertionError(f"daemon exited {self.process.returncode}: {err.decode()}")
            with contextlib.suppress(DaemonError), self.client(timeout=1.0) as client:
                client.ping()
                return self
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("daemon did not answer in time:\n" + self.log_text())
            time.sleep(0.02)

    def client(self, timeout: float = 30.0) -> DaemonClient:
        return DaemonClient(self.socket, timeout=timeout, client_name="tests")

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; return the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        try:
            self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL (no cleanup at all, like a crash) and reap."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.communicate()

    def stop(self) -> None:
        """Best-effort cleanup for fixtures: SIGTERM, then SIGKILL."""
        if self.process is None or self.process.poll() is not None:
            if self.process is not None:
                self.process.communicate()
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.terminate(timeout=15.0)
        self.kill()


class RawConnection:
    """A protocol-level client for sending arbitrary bytes and reading frames."""

    def __init__(self, path: Path | tuple[str, int], timeout: float = 10.0) -> None:
        family = socket.AF_INET if isinstance(path, tuple) else socket.AF_UNIX
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path if isinstance(path, tuple) else os.fspath(path))
        self.frames = FrameBuffer()
        self._pending: list[bytes] = []

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, message: Message) -> None:
        self.sock.sendall(encode_frame(message))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def hello(self, token: str | None = None) -> Message:
        self.send(Hello(protocol=PROTOCOL_VERSION, client="raw-test", token=token))
        return self.receive()

    def end_writing(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def receive(self) -> Message:
        """The next frame; raises EOFError when the daemon closed the connection."""
        while not self._pending:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("daemon closed the connection")
            self._pending.extend(self.frames.feed(chunk))
        return decode_message(self._pending.pop(0))

    def receive_all(self) -> list[Message]:
        """Every frame until the daemon closes the connection."""
        messages: list[Message] = []
        while True:
            try:
                messages.append(self.receive())
            except (EOFError, ConnectionResetError):
                return messages


def make_events(
    count: int,
    *,
    users: int = 20,
    start: int = _T0,
    step_us: int = 1_000,
    feature_names: Sequence[str] = ("export_csv", "search", "share", "upload"),
) -> list[Event]:
    """Realistic-ish events: users with sessions of feature events, time-ordered ids."""
    timestamps = [start + i * step_us for i in range(count)]
    ids = new_event_ids(timestamps)
    events: list[Event] = []
    for i, (event_id, ts) in enumerate(zip(ids, timestamps, strict=True)):
        user = f"user{(i // 7) % users}"
        events.append(
            Event(
                id=event_id,
                ts=ts,
                kind="feature",
                name=feature_names[i % len(feature_names)],
                user=user,
                account=f"acct{(i // 7) % users % 3}",
                session=f"s-{user}-{i // 50}",
                props={"plan": "pro"} if i % 5 == 0 else None,
                source="tests",
            )
        )
    return events


def stored_ids(db: Path) -> list[bytes]:
    """Every event id in the database (with repeats, if there ever were any)."""
    conn = connect_readonly(db)
    try:
        return [row[0] for row in conn.execute("SELECT id FROM events")]
    finally:
        conn.close()


@contextlib.contextmanager
def running_daemon(workdir: Path, *extra: str) -> Iterator[DaemonProcess]:
    """A started daemon, stopped (and reaped) on exit."""
    daemon = DaemonProcess(workdir, *extra)
    try:
        yield daemon.start()
    finally:
        daemon.stop()
