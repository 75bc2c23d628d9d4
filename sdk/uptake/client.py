"""The blocking client of the daemon: for the SDK's worker, the ``usage`` command, scripts.

Example::

    from uptake.client import DaemonClient

    with DaemonClient() as daemon:                   # the default socket (UPTAKE_SOCKET)
        print(daemon.status()["events_stored"])
        report = daemon.query("usage", {"since": "2026-11-01"})
        ack = daemon.send([event])                   # returns after the daemon committed it

    DaemonClient("tcp://127.0.0.1:7878")             # TCP: the token is read from the token file

Address: a Unix socket path (``str`` or ``os.PathLike``), or ``tcp://HOST:PORT`` for TCP
(the daemon listens on ``127.0.0.1`` only; an empty host means ``127.0.0.1``). The same
syntax as ``UPTAKE_SOCKET`` and ``uptake.configure(socket=...)``; see docs/protocol.md.

Two layers: ``connect()`` gives a handshaken ``Connection`` (frames out, messages in, every
operation bounded by a timeout; the SDK's worker pipelines ``Batch`` frames over it), and
``DaemonClient`` asks one question at a time over such a connection. Only the standard
library and msgspec are imported.

Failures raise ``DaemonError`` subclasses: ``DaemonUnavailableError`` (nothing answers),
``DaemonTimeoutError``, ``DaemonRefusedError`` (the daemon sent an ``Error`` frame;
``.code``), of which ``BatchRefusedError`` (an event of a batch is refused for good) and
``QueryError`` (a report query is refused: bad dates, unknown report or account).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Union

import msgspec

from uptake.paths import default_socket_path, default_token_path
from uptake.protocol import (
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    Ack,
    Batch,
    ErrorCode,
    ErrorFrame,
    Event,
    FrameBuffer,
    Hello,
    Message,
    ProtocolError,
    Query,
    ReportFilters,
    Result,
    Welcome,
    decode_message,
    encode_frame,
)

__all__ = [
    "TCP_PREFIX",
    "Address",
    "BatchRefusedError",
    "Connection",
    "DaemonClient",
    "DaemonError",
    "DaemonRefusedError",
    "DaemonTimeoutError",
    "DaemonUnavailableError",
    "QueryError",
    "connect",
    "daemon_is_running",
    "parse_address",
]

#: A Unix socket path, or ``"tcp://HOST:PORT"``.
Address = Union[str, "os.PathLike[str]"]
#: How a TCP address starts: ``tcp://127.0.0.1:7878``.
TCP_PREFIX: Final = "tcp://"
_DEFAULT_HOST: Final = "127.0.0.1"
_RECEIVE_BYTES: Final = 65536
#: Error codes by which the daemon refuses an event of a batch for good (never retried).
_REFUSAL_CODES: Final = frozenset(
    {ErrorCode.BAD_FRAME, ErrorCode.FRAME_TOO_LARGE, ErrorCode.BAD_MESSAGE, ErrorCode.BAD_EVENT}
)


class DaemonError(Exception):
    """The daemon is unreachable, stalled, refused the request or broke the protocol."""


class DaemonUnavailableError(DaemonError):
    """No daemon answers at the address (not started, stopped, or the wrong --socket)."""


class DaemonTimeoutError(DaemonError):
    """The daemon accepted the connection but did not answer in time."""


class DaemonRefusedError(DaemonError):
    """The daemon answered with an ``Error`` frame; ``code`` is an ``ErrorCode`` string."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"the daemon refused the request ({code}): {message}")
        self.code = code
        self.reason = message


class BatchRefusedError(DaemonRefusedError):
    """The daemon refused a batch because of an event in it (resending will not help)."""


class QueryError(DaemonRefusedError):
    """A report query is invalid (bad dates, unknown report or account)."""

    def __init__(self, message: str) -> None:
        DaemonError.__init__(self, message)
        self.code = ErrorCode.BAD_QUERY
        self.reason = message


def parse_address(address: Address) -> str | tuple[str, int]:
    """A Unix socket path, or the ``(host, port)`` of a ``tcp://HOST:PORT`` address.

    >>> parse_address("tcp://127.0.0.1:7878")
    ('127.0.0.1', 7878)
    >>> parse_address("tcp://:7878")
    ('127.0.0.1', 7878)
    >>> parse_address("/run/user/1000/uptake/uptake.sock")
    '/run/user/1000/uptake/uptake.sock'
    """
    text = os.fspath(address)
    if not text.startswith(TCP_PREFIX):
        return text
    host, colon, port = text[len(TCP_PREFIX) :].rpartition(":")
    if not colon or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad TCP address {text!r}: use tcp://127.0.0.1:PORT")
    return host or _DEFAULT_HOST, int(port)


def _describe(target: str | tuple[str, int]) -> str:
    return f"{TCP_PREFIX}{target[0]}:{target[1]}" if isinstance(target, tuple) else target


class Connection:
    """A handshaken stream to the daemon; every method raises ``DaemonError`` on trouble.

    Frames go out with ``send`` and messages come in with ``receive``, in order, each
    within its own timeout, so several ``Batch`` frames may await their ``Ack`` at once.
    """

    def __init__(self, sock: socket.socket, receive_bytes: int = _RECEIVE_BYTES) -> None:
        self._sock = sock
        self._receive_bytes = receive_bytes
        self._frames = FrameBuffer(MAX_FRAME_BYTES)
        self._pending: list[bytes] = []
        #: The daemon's ``Welcome``, once the handshake is done.
        self.welcome: Welcome | None = None

    def close(self) -> None:
        """Close the socket (never ``shutdown()``: a forked child must not cut the parent's)."""
        with contextlib.suppress(OSError):
            self._sock.close()

    @property
    def has_unread(self) -> bool:
        """True if the daemon sent more than was read so far."""
        return bool(self._pending or self._frames.pending)

    def is_stale(self) -> bool:
        """True if the daemon closed this idle connection (or sent something unasked).

        Checked before reusing a connection with nothing in flight, so a daemon restart
        costs a reconnect, not a failed batch and a trip through the spool.
        """
        if self.has_unread:
            return True
        try:
            self._sock.settimeout(0.0)  # with a timeout set, recv() would poll first
            peeked = self._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True
        del peeked  # closed (b"") or unexpected data: either way, start afresh
        return True

    def send(self, frame: bytes | bytearray, timeout: float) -> None:
        """Send one complete frame within ``timeout`` seconds."""
        try:
            self._sock.settimeout(max(timeout, 0.001))
            self._sock.sendall(frame)
        except TimeoutError:
            raise DaemonTimeoutError(
                f"sending to the daemon did not finish within {timeout:.2f}s"
            ) from None
        except OSError as exc:
            raise DaemonUnavailableError(
                f"sending to the daemon failed: {exc.strerror or exc}"
            ) from None

    def receive(self, timeout: float) -> Message:
        """Wait at most ``timeout`` seconds for the next message from the daemon."""
        deadline = time.monotonic() + timeout
        while not self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DaemonTimeoutError(f"the daemon did not answer within {timeout:.2f}s")
            try:
                self._sock.settimeout(remaining)
                chunk = self._sock.recv(self._receive_bytes)
            except TimeoutError:
                raise DaemonTimeoutError(
                    f"the daemon did not answer within {timeout:.2f}s"
                ) from None
            except OSError as exc:
                raise DaemonUnavailableError(
                    f"reading from the daemon failed: {exc.strerror or exc}"
                ) from None
            if not chunk:
                raise DaemonUnavailableError("the daemon closed the connection (is it stopping?)")
            try:
                self._pending.extend(self._frames.feed(chunk))
            except ProtocolError as exc:
                raise DaemonError(f"the daemon sent a bad frame: {exc.message}") from None
        payload = self._pending.pop(0)
        try:
            return decode_message(payload)
        except ProtocolError as exc:
            raise DaemonError(f"the daemon sent a bad message: {exc.message}") from None

    def wait_ack(self, timeout: float) -> Ack:
        """Return the next ``Ack``; ``BatchRefusedError`` on a refused event."""
        message = self.receive(timeout)
        if isinstance(message, Ack):
            return message
        if isinstance(message, ErrorFrame):
            raise _refusal(message)
        raise DaemonError(f"unexpected {type(message).__name__} from the daemon")


def _refusal(frame: ErrorFrame) -> DaemonRefusedError:
    if frame.code == ErrorCode.BAD_QUERY:
        return QueryError(frame.message)
    if frame.code in _REFUSAL_CODES:
        return BatchRefusedError(frame.code, frame.message)
    return DaemonRefusedError(frame.code, frame.message)


def _read_token(token: str | None, token_file: Path | None) -> str:
    if token:
        return token
    path = token_file or default_token_path()
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise DaemonUnavailableError(
            f"cannot read the daemon's token file {path} ({exc.strerror or exc}): "
            "is the daemon running with --tcp, and is this the right --token-file?"
        ) from None


def _open_socket(target: str | tuple[str, int], timeout: float) -> socket.socket:
    where = _describe(target)
    try:
        if isinstance(target, tuple):
            sock = socket.create_connection(target, timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(target)
        except BaseException:
            sock.close()
            raise
        return sock
    except (FileNotFoundError, ConnectionRefusedError):
        raise DaemonUnavailableError(
            f"no uptake daemon is running at {where}: start one with `usage daemon start`"
            " (or pass the right --socket)"
        ) from None
    except TimeoutError:
        raise DaemonTimeoutError(f"the daemon at {where} did not accept the connection") from None
    except OSError as exc:
        raise DaemonUnavailableError(
            f"cannot connect to the daemon at {where}: {exc.strerror or exc}"
        ) from None


def connect(
    address: Address,
    timeout: float,
    *,
    token: str | None = None,
    token_file: Path | None = None,
    client_name: str = "uptake-client",
    receive_bytes: int = _RECEIVE_BYTES,
) -> Connection:
    """Connect to ``address`` and complete the ``Hello``/``Welcome`` handshake.

    On TCP the ``Hello`` carries ``token``, else the content of ``token_file`` (default
    ``uptake.paths.default_token_path()``). ``timeout`` bounds the whole handshake.
    """
    deadline = time.monotonic() + timeout
    try:
        target = parse_address(address)
    except ValueError as exc:
        raise DaemonUnavailableError(str(exc)) from None
    hello_token = _read_token(token, token_file) if isinstance(target, tuple) else None
    connection = Connection(_open_socket(target, timeout), receive_bytes)
    try:
        connection.send(
            encode_frame(Hello(protocol=PROTOCOL_VERSION, client=client_name, token=hello_token)),
            deadline - time.monotonic(),
        )
        answer = connection.receive(max(deadline - time.monotonic(), 0.001))
        if isinstance(answer, ErrorFrame):
            raise _refusal(answer)
        if not isinstance(answer, Welcome):
            raise DaemonError(f"the daemon answered Hello with {type(answer).__name__}")
        if answer.protocol != PROTOCOL_VERSION:
            raise DaemonError(
                f"the daemon speaks protocol {answer.protocol}, this client {PROTOCOL_VERSION}"
            )
    except BaseException:
        connection.close()
        raise
    connection.welcome = answer
    return connection


class DaemonClient:
    """One connection to the daemon; connects (and says Hello) on first use.

    ``address``: a socket path or ``tcp://HOST:PORT`` (default: ``UPTAKE_SOCKET`` or the
    default socket); ``timeout`` bounds every request.
    """

    def __init__(
        self,
        address: Address | None = None,
        *,
        token: str | None = None,
        token_file: Path | None = None,
        timeout: float = 30.0,
        client_name: str = "uptake-client",
    ) -> None:
        self.address: Address = default_socket_path() if address is None else address
        self._token = token
        self._token_file = token_file
        self._timeout = timeout
        self._client_name = client_name
        self._connection: Connection | None = None
        self._seq = 0
        #: The daemon's ``Welcome`` (version string), once connected.
        self.welcome: Welcome | None = None

    def __enter__(self) -> DaemonClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (a later call connects again)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
            self.welcome = None

    def connect(self) -> Welcome:
        """Connect and exchange Hello/Welcome (done implicitly by every request)."""
        if self.welcome is not None:
            return self.welcome
        connection = connect(
            self.address,
            self._timeout,
            token=self._token,
            token_file=self._token_file,
            client_name=self._client_name,
            receive_bytes=256 * 1024,
        )
        assert connection.welcome is not None
        self._connection = connection
        self.welcome = connection.welcome
        return connection.welcome

    def ping(self) -> float:
        """Round-trip a ``status`` query; return the seconds it took (raises if down)."""
        started = time.perf_counter()
        self.status()
        return time.perf_counter() - started

    def status(self) -> dict[str, Any]:
        """The daemon's ``status`` report (see docs/protocol.md)."""
        return self.query("status")

    def query(
        self,
        report: str = "usage",
        filters: ReportFilters | Mapping[str, str | None] | None = None,
    ) -> dict[str, Any]:
        """Run a report on the daemon and return its JSON-able body.

        ``filters``: a ``ReportFilters`` or a mapping with its fields (since, until,
        account, user, feature). Raises ``QueryError`` if the query is refused.
        """
        if filters is None:
            filters = ReportFilters()
        elif not isinstance(filters, ReportFilters):
            try:
                filters = msgspec.convert(dict(filters), ReportFilters)
            except msgspec.ValidationError as exc:
                raise QueryError(f"bad report filters: {exc}") from None
        if report not in ("usage", "status"):
            raise QueryError(f"unknown report {report!r}: use 'usage' or 'status'")
        answer = self._request(Query(report=report, filters=filters))  # type: ignore[arg-type]
        if not isinstance(answer, Result):
            raise DaemonError(f"the daemon answered Query with {type(answer).__name__}")
        return answer.body

    def send(self, events: Sequence[Event]) -> Ack:
        """Send one batch and return its ``Ack`` (sent by the daemon after the commit)."""
        self._seq += 1
        answer = self._request(Batch(seq=self._seq, events=list(events)))
        if not isinstance(answer, Ack) or answer.seq != self._seq:
            raise DaemonError(f"the daemon answered Batch {self._seq} with {answer!r}")
        return answer

    def _request(self, message: Message) -> Message:
        self.connect()
        connection = self._connection
        assert connection is not None
        try:
            connection.send(encode_frame(message), self._timeout)
            answer = connection.receive(self._timeout)
        except DaemonTimeoutError:
            self.close()
            raise DaemonTimeoutError(
                f"no answer from the daemon within {self._timeout:g} s"
            ) from None
        except DaemonError:
            self.close()
            raise
        if connection.has_unread:
            # Requests are answered one at a time, so this is a daemon bug.
            self.close()
            raise DaemonError("the daemon sent answers that were not asked for")
        if isinstance(answer, ErrorFrame):
            refusal = _refusal(answer)
            if not isinstance(refusal, QueryError):
                self.close()
            raise refusal
        return answer


def daemon_is_running(address: Address | None = None, *, timeout: float = 2.0) -> bool:
    """True if a daemon answers a ``status`` query at ``address`` (default socket)."""
    try:
        with DaemonClient(address, timeout=timeout) as client:
            client.ping()
    except DaemonError:
        return False
    return True
