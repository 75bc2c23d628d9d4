"""Running the daemon as a process: pidfile, logging, signals, detaching, stopping.

- ``run_foreground``: lock and write the pidfile, log to a file, serve until SIGTERM or
  SIGINT, then stop gracefully (stop accepting, drain, commit, ack, close). A second
  signal while draining stops at once; the transaction in progress still completes.
- ``start_detached``: start ``python -m uptake_aggregator --foreground`` in its own
  session (no controlling terminal, survives the shell) and wait until it answers.
- ``stop_daemon``: SIGTERM the daemon named by the pidfile and wait for it to exit.

The pidfile (next to the socket, ``uptake.paths.pidfile_path``) is held with ``flock``
for the daemon's whole life, so "is a daemon running?" has an exact answer even after a
``kill -9`` left the file behind, and a reused pid is never mistaken for the daemon. A
second one next to the database (``database_pidfile_path``) makes the answer exact for
"does a daemon serve this database?", whatever socket it listens on: one daemon per
database, and ``usage prune`` refuses while one serves it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import logging.handlers
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Final, TextIO

import anyio

from uptake.paths import default_log_dir, pidfile_path
from uptake_aggregator.daemon.server import Daemon, DaemonConfig
from uptake_aggregator.errors import DaemonError
from uptake_aggregator.store import open_store

__all__ = [
    "DEFAULT_LOG_NAME",
    "PidFile",
    "configure_logging",
    "daemon_argv",
    "daemon_env",
    "database_daemon",
    "database_pidfile_path",
    "default_log_file",
    "run_foreground",
    "running_pid",
    "start_detached",
    "stop_daemon",
]

DEFAULT_LOG_NAME: Final = "uptaked.log"
_log = logging.getLogger("uptake_aggregator.daemon.lifecycle")


def default_log_file() -> Path:
    """The daemon's log file: ``<log dir>/uptaked.log`` (``$UPTAKE_LOG_DIR`` overrides)."""
    return default_log_dir() / DEFAULT_LOG_NAME


class PidFile:
    """The daemon's pidfile, locked (``flock``) while the daemon lives.

    ``note`` is written after the pid (the database's pidfile names the socket), and
    ``taken`` is the advice when another daemon holds the file.
    """

    def __init__(
        self,
        path: Path,
        *,
        note: str = "",
        taken: str = "stop it first (`usage daemon stop`) or use another --socket",
    ) -> None:
        self.path = path
        self._note = note
        self._taken = taken
        self._fd: int | None = None

    def acquire(self) -> None:
        """Lock the file and write our pid; raise ``DaemonError`` if a daemon holds it."""
        try:
            if not self.path.parent.exists():
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise DaemonError(
                f"cannot create the pidfile {self.path}: {exc.strerror or exc}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder, note = _read_holder(fd)
            os.close(fd)
            held = f"pid {holder or '?'}" + (f", socket {note}" if note else "")
            raise DaemonError(
                f"an uptake daemon ({held}) is already running with pidfile {self.path}: "
                f"{self._taken}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n{self._note}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Remove the file and drop the lock."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None


def _read_holder(fd: int) -> tuple[int | None, str]:
    """The pid and the note written in a pidfile (None, '' when unreadable)."""
    try:
        first, _, rest = os.pread(fd, 4096, 0).decode().partition("\n")
        return int(first.strip()), rest.strip()
    except (ValueError, OSError, UnicodeDecodeError):
        return None, ""


def _locked_holder(path: Path) -> tuple[int | None, str] | None:
    """(pid, note) of the live daemon holding the pidfile ``path``, or None without one.

    A pidfile that nobody holds locked is left from a dead daemon and counts as none.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        return None
    finally:
        os.close(fd)


def running_pid(socket_path: Path) -> int | None:
    """The pid of the live daemon serving ``socket_path``, or None if there is none."""
    holder = _locked_holder(pidfile_path(socket_path))
    return None if holder is None else holder[0]


def database_pidfile_path(db_path: Path) -> Path:
    """The pidfile a daemon holds next to its database: ``<db>.daemon``.

    Next to the file the path resolves to, so a relative or symlinked path to the same
    database finds the same pidfile.
    """
    resolved = db_path.resolve()
    return resolved.with_name(resolved.name + ".daemon")


def database_daemon(db_path: Path) -> tuple[int | None, str] | None:
    """(pid, socket) of the live daemon serving the database ``db_path``, or None."""
    return _locked_holder(database_pidfile_path(db_path))


def configure_logging(log_file: Path, *, stderr: bool, level: str = "INFO") -> None:
    """Log to ``log_file`` (created with a 0700 parent) and, optionally, to stderr.

    ``WatchedFileHandler`` reopens the file after logrotate moves it.
    """
    _create_private(log_file)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")
    handlers: list[logging.Handler] = [logging.handlers.WatchedFileHandler(log_file)]
    if stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    root = logging.getLogger()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level.upper())


def run_foreground(config: DaemonConfig) -> None:
    """Run the daemon in this process until SIGTERM/SIGINT; raise ``DaemonError`` on failure.

    Blocks. Use for systemd (``Type=simple``), supervisors and ``--foreground``.
    """
    # The database, log and token hold user activity: readable by this user only.
    os.umask(0o077)
    pidfile = PidFile(pidfile_path(config.socket_path))
    pidfile.acquire()
    try:
        # One daemon per database: two would each serve half the clients of one store.
        database = PidFile(
            database_pidfile_path(config.db_path),
            note=str(config.socket_path),
            taken=f"it serves {config.db_path}; use its socket, or stop it first",
        )
        database.acquire()
        try:
            # Before the database opens: process-wide, and only allowed with no connection.
            open_store(config.db_path).prepare_process()
            anyio.run(_serve_until_signalled, config, backend="asyncio")
        finally:
            database.release()
    finally:
        pidfile.release()


async def _serve_until_signalled(config: DaemonConfig) -> None:
    daemon = Daemon(config)
    failures: list[Exception] = []
    async with anyio.create_task_group() as tasks:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:

            async def watch_signals() -> None:
                async for signum in signals:
                    if not daemon.stopping:
                        _log.info("%s: stopping gracefully", signal.Signals(signum).name)
                        daemon.stop()
                    else:
                        _log.warning("second %s: stopping now", signal.Signals(signum).name)
                        tasks.cancel_scope.cancel()

            tasks.start_soon(watch_signals)
            try:
                await daemon.serve()
            except Exception as exc:
                # Re-raised below, outside the task group, so callers see a DaemonError or
                # StorageError rather than an ExceptionGroup.
                failures.append(exc)
            finally:
                tasks.cancel_scope.cancel()
    if failures:
        raise failures[0]


def daemon_argv(config: DaemonConfig, log_file: Path, log_level: str = "INFO") -> list[str]:
    """Options of ``python -m uptake_aggregator`` that run the daemon with ``config``."""
    argv = ["--socket", str(config.socket_path), "--db", str(config.db_path)]
    argv += ["--log-file", str(log_file), "--log-level", log_level]
    if config.tcp_port is not None:
        argv += ["--tcp", str(config.tcp_port)]
    if config.token_path is not None:
        argv += ["--token-file", str(config.token_path)]
    limits = config.connection
    argv += ["--hello-timeout", str(limits.hello_timeout)]
    argv += ["--frame-timeout", str(limits.frame_timeout)]
    if limits.idle_timeout is not None:
        argv += ["--idle-timeout", str(limits.idle_timeout)]
    argv += ["--max-queued-events", str(config.max_queued_events)]
    if config.config_path is not None:
        argv += ["--config", str(config.config_path)]
    if config.spool_dirs:
        for root in config.spool_dirs:
            argv += ["--spool-dir", str(root)]
        argv += ["--adopt-interval", str(config.adopt_interval)]
    else:
        argv += ["--no-adopt"]
    if config.forward is not None:
        argv += ["--forward-chunk", str(config.forward_chunk_events)]
        argv += ["--forward-backoff-max", str(config.forward_backoff_max_s)]
    return argv


def daemon_env(config: DaemonConfig) -> dict[str, str]:
    """Environment for the daemon process: the forward URL, which may hold a password.

    Passed in the environment rather than ``argv``, which any user on the host can read.
    """
    return {} if config.forward is None else {"UPTAKE_FORWARD": config.forward}


def start_detached(
    argv: list[str],
    socket_path: Path,
    log_file: Path,
    *,
    wait: float = 15.0,
    env: dict[str, str] | None = None,
) -> int:
    """Start ``python -m uptake_aggregator --foreground <argv>`` detached; return its pid.

    The daemon runs in a new session with stdin closed and stdout/stderr appended to
    ``log_file`` (tracebacks from a crash at start end up there). Returns once the daemon
    answers on ``socket_path``; raises ``DaemonError`` with the end of the log if it exits
    or does not answer within ``wait`` seconds. ``env`` is added to this environment.
    """
    from uptake.client import DaemonClient  # nothing heavy
    from uptake.client import DaemonError as ClientError

    _create_private(log_file)
    command = [sys.executable, "-m", "uptake_aggregator", "--foreground", "--quiet", *argv]
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
            env={**os.environ, **env} if env else None,
        )
    deadline = time.monotonic() + wait
    while True:
        code = process.poll()
        if code is not None:
            raise DaemonError(
                f"the daemon exited at start (code {code}); end of {log_file}:\n" + _tail(log_file)
            )
        with contextlib.suppress(ClientError), DaemonClient(socket_path, timeout=1.0) as client:
            client.ping()
            return process.pid
        if time.monotonic() > deadline:
            process.terminate()
            raise DaemonError(
                f"the daemon did not answer on {socket_path} within {wait:g} s; "
                f"end of {log_file}:\n" + _tail(log_file)
            )
        time.sleep(0.05)


def stop_daemon(socket_path: Path, *, timeout: float = 30.0) -> int | None:
    """SIGTERM the daemon serving ``socket_path`` and wait until it has exited.

    Returns its pid, or None if no daemon was running. Raises ``DaemonError`` if it is
    still running after ``timeout`` seconds (``kill -9`` is then safe: every acknowledged
    event is already committed).
    """
    pid = running_pid(socket_path)
    if pid is None:
        return None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return pid
    deadline = time.monotonic() + timeout
    while running_pid(socket_path) == pid:
        if time.monotonic() > deadline:
            raise DaemonError(
                f"the daemon (pid {pid}) did not stop within {timeout:g} s; `kill -9 {pid}` "
                "is safe (acknowledged events are committed)"
            )
        time.sleep(0.05)
    return pid


def _create_private(path: Path) -> None:
    # Logs name users and accounts: create them readable by this user only.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))


def _tail(path: Path, lines: int = 15) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return "".join(_last_lines(handle, lines))
    except OSError:
        return "(no log)"


def _last_lines(handle: TextIO, count: int) -> list[str]:
    return handle.readlines()[-count:]
