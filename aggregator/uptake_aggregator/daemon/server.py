"""The daemon's server: listeners, connections, the writer and the query path.

``Daemon.serve`` claims the Unix socket (a stale file from a dead daemon is replaced, a
live daemon's socket never), optionally listens on TCP at 127.0.0.1 with a random token
written to a 0600 token file, and serves until ``stop()``. Stopping is graceful: accept no
new connections, read no new frames, commit what was received, send its acks, close.

Example::

    daemon = Daemon(DaemonConfig(socket_path=Path("/tmp/up/uptake.sock"),
                                 db_path=Path("/tmp/up/uptake.db")))
    anyio.run(daemon.serve, backend="asyncio")   # until daemon.stop() (lifecycle wires signals)
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import logging
import os
import secrets
import socket
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import anyio
from anyio.abc import SocketAttribute, SocketListener, SocketStream, TaskGroup, TaskStatus

from uptake.paths import default_token_path
from uptake.protocol import (
    ErrorCode,
    ErrorFrame,
    ProtocolError,
    Query,
    ReportFilters,
    Result,
    encode_frame,
)
from uptake_aggregator.daemon.adoption import DEFAULT_ADOPT_INTERVAL, SpoolAdopter
from uptake_aggregator.daemon.connection import Connection, ConnectionSettings
from uptake_aggregator.daemon.forwarder import (
    DEFAULT_BACKOFF_MAX_S,
    DEFAULT_CHUNK_EVENTS,
    POLL_S,
    Forwarder,
    ForwardSettings,
)
from uptake_aggregator.daemon.status import (
    DaemonSnapshot,
    daemon_version,
    read_events_stored,
    status_body,
)
from uptake_aggregator.daemon.writer import (
    DEFAULT_MAX_QUEUED_EVENTS,
    DEFAULT_MAX_ROUND_EVENTS,
    BatchWriter,
)
from uptake_aggregator.errors import AggregatorError, DaemonError, QueryError
from uptake_aggregator.store import open_forward_target, open_store, shown_location

if TYPE_CHECKING:
    # Loaded only when a config has goals: the daemon without goals never imports them.
    from uptake_aggregator.alerts import Notifier
    from uptake_aggregator.config import Config
    from uptake_aggregator.store.alerts import AlertLog
    from uptake_aggregator.store.ingest import EventWriter

__all__ = [
    "Daemon",
    "DaemonConfig",
    "ServingInfo",
    "claim_unix_socket",
    "socket_is_live",
    "write_token_file",
]

#: AF_UNIX paths are limited to 108 bytes including the terminating NUL on Linux.
_MAX_UNIX_PATH: Final = 107
_log = logging.getLogger("uptake_aggregator.daemon.server")
#: How often the forward cursor is written when no ingest transaction carries it.
_SAVE_CURSOR_EVERY_S: Final = 1.0


@dataclass(frozen=True)
class DaemonConfig:
    """Where the daemon listens and stores, and its limits."""

    socket_path: Path
    db_path: Path
    #: Also listen on 127.0.0.1:tcp_port (0 picks a free port); None: Unix socket only.
    tcp_port: int | None = None
    #: Where the TCP token is written (mode 0600); default ``uptake.paths.default_token_path()``.
    token_path: Path | None = None
    connection: ConnectionSettings = field(default_factory=ConnectionSettings)
    max_queued_events: int = DEFAULT_MAX_QUEUED_EVENTS
    max_round_events: int = DEFAULT_MAX_ROUND_EVENTS
    max_connections: int = 1024
    #: On stop, how long connections get to receive the acks of what they sent.
    drain_timeout: float = 30.0
    #: Concurrent report queries (each in a worker process, see ``report_process``).
    max_queries: int = 2
    #: Compute reports in worker processes (False: in threads of the daemon, which slows
    #: ingest while a report runs).
    report_process: bool = True
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    #: ``uptake.toml`` with goals to evaluate every ``[alerts] every`` (None: no goals).
    config_path: Path | None = None
    #: Spool roots whose orphaned files for this daemon's addresses it adopts (stores and
    #: removes); empty: adopt nothing. See ``uptake_aggregator.daemon.adoption``.
    spool_dirs: tuple[Path, ...] = ()
    #: Seconds between two looks for orphaned spool files.
    adopt_interval: float = DEFAULT_ADOPT_INTERVAL
    #: Forward every committed event to this central store (``postgresql://...``); None:
    #: no forwarding. See ``uptake_aggregator.daemon.forwarder``.
    forward: str | None = None
    #: Events per central transaction.
    forward_chunk_events: int = DEFAULT_CHUNK_EVENTS
    #: Longest sleep between two attempts while the centre fails (full-jitter backoff).
    forward_backoff_max_s: float = DEFAULT_BACKOFF_MAX_S


@dataclass(frozen=True)
class ServingInfo:
    """Passed to ``task_status.started`` once the daemon accepts connections."""

    socket_path: Path
    tcp_port: int | None


def socket_is_live(path: Path, timeout: float = 1.0) -> bool:
    """True if something accepts connections on the Unix socket ``path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(timeout)
    try:
        probe.connect(os.fspath(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError as exc:
        # EACCES, a timeout with a full backlog...: someone owns it; never steal it.
        _log.debug("probing %s: %s", path, exc)
        return exc.errno not in (errno.ECONNREFUSED, errno.ENOENT)
    else:
        return True
    finally:
        probe.close()


def claim_unix_socket(path: Path, backlog: int = 1024) -> socket.socket:
    """Bind and listen on ``path`` (mode 0600; parent created 0700 if missing).

    An existing socket file that nobody answers on is left over from a dead daemon and is
    replaced. Raises ``DaemonError`` if a live process listens there or the path is not a
    socket, so a running daemon is never disconnected by a second one.
    """
    name = os.fsencode(path)
    if len(name) > _MAX_UNIX_PATH:
        raise DaemonError(
            f"socket path {path} is {len(name)} bytes, over the {_MAX_UNIX_PATH}-byte limit "
            "of Unix sockets: choose a shorter --socket"
        )
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(mode):
            raise DaemonError(
                f"{path} exists and is not a socket: remove it or choose another --socket"
            )
        if socket_is_live(path):
            raise DaemonError(
                f"another daemon is listening on {path}: stop it first "
                f"(`usage daemon stop --socket {path}`) or choose another --socket"
            )
        _log.info("replacing stale socket %s left by a daemon that is gone", path)
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # no window in which the socket is group/world-accessible
    try:
        sock.bind(os.fspath(path))
    except OSError as exc:
        sock.close()
        raise DaemonError(f"cannot listen on {path}: {exc.strerror or exc}") from None
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def _listen_tcp_loopback(port: int, backlog: int = 1024) -> socket.socket:
    # Loopback only, by construction: the token guards the port from other local users,
    # and nothing off this machine can reach it.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise DaemonError(
            f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}; choose another --tcp port"
        ) from None
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def write_token_file(path: Path) -> str:
    """Write a fresh random token to ``path`` (mode 0600, atomically) and return it."""
    token = secrets.token_urlsafe(32)
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    os.replace(tmp, path)
    return token


class Daemon:
    """Serve clients until ``stop()``; see the module docstring."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self._stop = anyio.Event()
        self._connections: set[Connection] = set()
        self._no_connections = anyio.Event()
        self._started_at = time.time()
        self._tcp_port: int | None = None
        self._writer: BatchWriter | None = None
        self._adopter: SpoolAdopter | None = None
        self._forwarder: Forwarder | None = None
        self._storage: EventWriter | None = None
        self._query_limiter = anyio.CapacityLimiter(config.max_queries)
        self._goal_evaluations = 0
        self._goal_changes = 0
        self._goal_every_s: float | None = None
        self._goal_scope = anyio.CancelScope()

    @property
    def stopping(self) -> bool:
        """True once ``stop()`` was called."""
        return self._stop.is_set()

    def stop(self) -> None:
        """Begin a graceful stop (call from the daemon's event loop, e.g. a signal task)."""
        self._stop.set()

    async def serve(
        self, *, task_status: TaskStatus[ServingInfo] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Open storage and listeners, serve until ``stop()``, then drain and close.

        Raises ``DaemonError`` when the socket is taken or cannot be created, and
        ``StorageError`` when the database cannot be opened.
        """
        config = self.config
        # A bad config file stops the start before the socket is claimed or the db opened.
        settings = _goal_settings(config.config_path)
        if config.forward is not None:
            open_forward_target(config.forward)  # a bad URL stops the start (no connection)
        storage = await open_store(config.db_path).open_writer(synchronous=config.synchronous)
        self._storage = storage
        token_path: Path | None = None
        forwarder: Forwarder | None = None
        try:
            listeners: list[tuple[SocketListener, str | None]] = []
            unix_sock = claim_unix_socket(config.socket_path)
            try:
                listeners.append((await SocketListener.from_socket(unix_sock), None))
                if config.tcp_port is not None:
                    tcp = await SocketListener.from_socket(_listen_tcp_loopback(config.tcp_port))
                    self._tcp_port = int(tcp.extra(SocketAttribute.local_port))
                    token_path = config.token_path or default_token_path()
                    listeners.append((tcp, write_token_file(token_path)))
            except BaseException:
                for listener, _ in listeners:
                    await listener.aclose()
                unix_sock.close()
                _unlink_quietly(config.socket_path)
                raise
            writer = self._writer = BatchWriter(
                storage,
                max_queued_events=config.max_queued_events,
                max_round_events=config.max_round_events,
            )
            adoption = anyio.CancelScope()
            saving = anyio.CancelScope()
            if config.forward is not None:
                forwarder = self._forwarder = _start_forwarder(config, storage)
            async with anyio.create_task_group() as root:
                root.start_soon(writer.run)
                if forwarder is not None:
                    root.start_soon(
                        _run_in_scope, saving, partial(_keep_cursor, storage, forwarder)
                    )
                if settings is not None:
                    root.start_soon(self._watch_goals, settings)
                if config.spool_dirs:
                    adopter = self._adopter = SpoolAdopter(
                        config.spool_dirs,
                        self.addresses(),
                        writer,
                        interval=config.adopt_interval,
                    )
                    root.start_soon(_run_in_scope, adoption, adopter.run)
                try:
                    await self._serve_connections(listeners, task_status)
                finally:
                    # A file being adopted stays on disk (its events are committed or
                    # not; the next start drops the committed ones as duplicates).
                    adoption.cancel()
                    saving.cancel()
                    _unlink_quietly(config.socket_path)
                    writer.close()
                    self._goal_scope.cancel()  # the goal schedule; the writer drains
            _log.info(
                "stopped: %d batches in %d commits since start",
                writer.batches_committed,
                writer.rounds,
            )
        finally:
            if forwarder is not None:
                # Its chunk in flight commits or not; the next start asks the centre.
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(forwarder.stop)
            if token_path is not None:
                _unlink_quietly(token_path)
            await storage.close()  # writes the last forward cursor noted

    def addresses(self) -> list[str]:
        """The addresses SDKs reach this daemon by (and name their spool directories by)."""
        addresses = [str(self.config.socket_path)]
        if self._tcp_port is not None:
            addresses.append(f"tcp://127.0.0.1:{self._tcp_port}")
        return addresses

    async def _serve_connections(
        self,
        listeners: list[tuple[SocketListener, str | None]],
        task_status: TaskStatus[ServingInfo],
    ) -> None:
        config = self.config
        async with anyio.create_task_group() as conns:
            async with anyio.create_task_group() as acceptors:
                for listener, token in listeners:
                    acceptors.start_soon(self._accept_loop, listener, token, conns)
                _log.info(
                    "listening on %s%s, db %s",
                    config.socket_path,
                    f" and 127.0.0.1:{self._tcp_port}" if self._tcp_port is not None else "",
                    config.db_path,
                )
                task_status.started(ServingInfo(config.socket_path, self._tcp_port))
                await self._stop.wait()
                _log.info("stopping: no new connections; draining %d", len(self._connections))
                acceptors.cancel_scope.cancel()
            for listener, _ in listeners:
                await listener.aclose()
            for connection in list(self._connections):
                connection.stop_reading()
            with anyio.move_on_after(config.drain_timeout):
                while self._connections:
                    await self._no_connections.wait()
            if self._connections:
                _log.warning(
                    "%d connections did not take their acks within %g s; closing them",
                    len(self._connections),
                    config.drain_timeout,
                )
            conns.cancel_scope.cancel()

    async def _accept_loop(
        self, listener: SocketListener, token: str | None, conns: TaskGroup
    ) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                # EMFILE and friends: back off rather than spin; the daemon stays up.
                _log.error("accept failed: %s", exc)
                await anyio.sleep(0.1)
                continue
            conns.start_soon(self._run_connection, stream, token)

    async def _run_connection(self, stream: SocketStream, token: str | None) -> None:
        writer = self._writer
        assert writer is not None
        if len(self._connections) >= self.config.max_connections:
            refusal = ErrorFrame(
                code=ErrorCode.INTERNAL, message="too many connections; retry later"
            )
            with contextlib.suppress(Exception), anyio.move_on_after(1.0):
                await stream.send(encode_frame(refusal))
            await stream.aclose()
            return
        connection = Connection(
            stream,
            peer=_describe_peer(stream, token is not None),
            writer=writer,
            answer_query=self.answer_query,
            daemon_name=f"uptake {daemon_version()}",
            token=token,
            settings=self.config.connection,
        )
        self._connections.add(connection)
        self._no_connections = anyio.Event()
        try:
            await connection.serve()
        except Exception:
            _log.exception("connection %s failed", connection.peer)
        finally:
            self._connections.discard(connection)
            if not self._connections:
                self._no_connections.set()

    async def _watch_goals(self, settings: Config) -> None:
        """Evaluate the goals every ``[alerts] every``; deliver the status changes.

        The report runs on the query path (a worker process, within ``max_queries``); the
        alert log's short write in a worker thread; delivery on the notifier's threads.
        So a slow command or a hung webhook never holds up ingest, reports or the next
        evaluation.
        """
        from uptake_aggregator.alerts import Notifier

        every = settings.alerts.every_s
        self._goal_every_s = every
        alert_log = open_store(self.config.db_path).alert_log()
        notifier = Notifier(settings.alerts)
        try:
            with self._goal_scope:
                await self._evaluate_goals_forever(settings, alert_log, notifier, every)
        finally:
            # Short: queued deliveries get a moment, a hung webhook does not hold the stop.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(partial(notifier.close, timeout=2.0))

    async def _evaluate_goals_forever(
        self, settings: Config, alert_log: AlertLog, notifier: Notifier, every: float
    ) -> None:
        from uptake_aggregator.alerts import evaluate_and_record
        from uptake_aggregator.metrics import build_report

        while True:
            started = time.monotonic()
            try:
                report = await self._run_report(ReportFilters(), build_report)
                messages = await anyio.to_thread.run_sync(
                    evaluate_and_record, report, settings.goals, alert_log
                )
            except Exception:
                _log.exception("goal evaluation failed; next try in %g s", every)
            else:
                self._goal_evaluations += 1
                self._goal_changes += len(messages)
                for message in messages:
                    _log.info(
                        "goal %s for %s: %s -> %s (value %s)",
                        message["goal"],
                        message["subject"],
                        message["from"] or "none",
                        message["to"],
                        message["value"],
                    )
                notifier.send(messages)
            await anyio.sleep(max(0.0, every - (time.monotonic() - started)))

    async def answer_query(self, query: Query) -> Result:
        """Answer a ``Query``; raise ``ProtocolError`` (bad_query / internal) otherwise."""
        if query.report == "status":
            return Result(report="status", body=await self.status())
        if query.report == "usage":
            return Result(report="usage", body=await self._usage(query))
        raise ProtocolError(ErrorCode.BAD_QUERY, f"unknown report {query.report!r}")

    async def status(self) -> dict[str, Any]:
        """The body of a ``status`` query (see ``uptake_aggregator.daemon.status``)."""
        writer = self._writer
        snapshot = DaemonSnapshot(
            started_at=self._started_at,
            now=time.time(),
            socket=self.config.socket_path,
            tcp_port=self._tcp_port,
            db=self.config.db_path,
            clients_connected=len(self._connections),
            queued_events=writer.queued_events if writer else 0,
            batches_committed=writer.batches_committed if writer else 0,
            commits=writer.rounds if writer else 0,
            commit_seconds=writer.busy_seconds if writer else 0.0,
        )
        try:
            stored, size = await anyio.to_thread.run_sync(
                read_events_stored, open_store(self.config.db_path)
            )
        except AggregatorError as exc:
            raise ProtocolError(ErrorCode.INTERNAL, str(exc)) from None
        body = status_body(snapshot, stored, size)
        if self._goal_every_s is not None:
            body["goals"] = {
                "every_s": self._goal_every_s,
                "evaluations": self._goal_evaluations,
                "changes": self._goal_changes,
            }
        if self._adopter is not None:
            body["spool"] = self._adopter.stats.body(self._adopter.directories)
        if self._forwarder is not None and self._storage is not None:
            body["forward"] = self._forwarder.status(self._storage.last_seq())
        return body

    async def _usage(self, query: Query) -> dict[str, Any]:
        try:
            # Imported lazily: the metrics engine is optional for ingest, and heavy.
            build_report = importlib.import_module("uptake_aggregator.metrics").build_report
        except ImportError as exc:
            if exc.name not in ("uptake_aggregator.metrics", None):
                raise ProtocolError(
                    ErrorCode.INTERNAL, f"metrics engine failed to import: {exc}"
                ) from None
            raise ProtocolError(ErrorCode.INTERNAL, "metrics engine not installed") from None
        try:
            body = await self._run_report(query.filters, build_report)
        except QueryError as exc:
            raise ProtocolError(ErrorCode.BAD_QUERY, str(exc)) from None
        except AggregatorError as exc:
            raise ProtocolError(ErrorCode.INTERNAL, str(exc)) from None
        except Exception as exc:
            _log.exception("usage report failed")
            raise ProtocolError(ErrorCode.INTERNAL, f"the report failed: {exc}") from None
        return body

    async def _run_report(
        self, filters: ReportFilters, build_report: Callable[[Path, ReportFilters], dict[str, Any]]
    ) -> dict[str, Any]:
        """The report, computed in a worker process; in a thread if none can start.

        A report is seconds of Python on a large database. In a thread of the daemon it
        would share the GIL with ingest: every SQLite step of the writer then waits for
        the GIL, and ingest slows several times while the report runs. A worker process
        (kept for reuse by anyio, one per concurrent query) leaves ingest alone, and being
        single-threaded it may fork to use a second core (``build_report(parallel=True)``).
        """
        args = (self.config.db_path, filters)
        if self.config.report_process:
            try:
                return await anyio.to_process.run_sync(
                    report_in_worker, *args, limiter=self._query_limiter
                )
            except anyio.BrokenWorkerProcess as exc:
                _log.warning("report worker process failed (%s); using a thread", exc)
        body: dict[str, Any] = await anyio.to_thread.run_sync(
            build_report, *args, limiter=self._query_limiter
        )
        return body


def _start_forwarder(config: DaemonConfig, storage: EventWriter) -> Forwarder:
    """Start forwarding ``storage``'s events to ``config.forward`` on a thread of its own."""
    url = config.forward
    assert url is not None
    start = storage.forward_cursor()
    # From now on the database is an outbox: a prune keeps what the centre lacks.
    storage.note_forwarded(max(start, 0))
    forwarder = Forwarder(
        ForwardSettings(
            url=url,
            shown_url=shown_location(url),
            chunk_events=config.forward_chunk_events,
            backoff_max_s=config.forward_backoff_max_s,
        ),
        open_outbox=storage.open_outbox,
        open_target=partial(open_forward_target, url),
        noted=storage.note_forwarded,
        start_cursor=start,
    )
    forwarder.start()
    return forwarder


async def _keep_cursor(storage: EventWriter, forwarder: Forwarder) -> None:
    """Tell the forwarder what is committed (its lag in seconds) every ``POLL_S``; store
    the forward cursor every second when no ingest transaction carried it."""
    saved_at = time.monotonic()
    while True:
        await anyio.sleep(POLL_S)
        forwarder.observe(storage.last_seq())
        if time.monotonic() - saved_at < _SAVE_CURSOR_EVERY_S:
            continue
        saved_at = time.monotonic()
        try:
            await storage.save_forwarded()
        except Exception:
            _log.exception("saving the forward cursor failed; it is retried in a second")


def report_in_worker(db_path: Path, filters: ReportFilters) -> dict[str, Any]:
    """``build_report`` as run in a report worker process (single-threaded: may fork)."""
    from uptake_aggregator.metrics import build_report

    return build_report(db_path, filters, parallel=True)


def _goal_settings(path: Path | None) -> Config | None:
    """The validated config at ``path`` when it has goals, else None (``ConfigError`` if bad)."""
    if path is None:
        return None
    from uptake_aggregator.config import load_config

    settings = load_config(path)
    if not settings.goals:
        _log.info("config %s has no [[goal]]: no goal evaluation", path)
        return None
    _log.info(
        "evaluating %d goals from %s every %g s", len(settings.goals), path, settings.alerts.every_s
    )
    return settings


async def _run_in_scope(scope: anyio.CancelScope, run: Callable[[], Awaitable[None]]) -> None:
    with scope:
        await run()


def _describe_peer(stream: SocketStream, tcp: bool) -> str:
    if tcp:
        address = stream.extra(SocketAttribute.remote_address, None)
        return f"tcp:{address[0]}:{address[1]}" if isinstance(address, tuple) else "tcp"
    return f"unix:{stream.extra(SocketAttribute.raw_socket).fileno()}"


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
