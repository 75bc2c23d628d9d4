"""A small synchronous client of the daemon, for the CLI, scripts and tests.

Example::

    with DaemonClient(Path("/run/user/1000/uptake/uptake.sock")) as daemon:
        print(daemon.status()["events_stored"])
        report = daemon.query("usage", {"since": "2026-11-01"})
        ack = daemon.send([event])           # returns after the daemon committed the batch

    DaemonClient(("127.0.0.1", 7878))        # TCP: the token is read from the token file

Failures raise ``AggregatorError`` subclasses: ``DaemonUnavailableError`` (nothing answers),
``DaemonTimeoutError``, ``DaemonRefusedError`` (the daemon sent an ``Error`` frame; ``.code``),
and ``QueryError`` for a refused report query (bad dates, unknown report).
"""

from __future__ import annotations

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
from uptake_aggregator.errors import DaemonError, QueryError

__all__ = [
    "DaemonClient",
    "DaemonRefusedError",
    "DaemonTimeoutError",
    "DaemonUnavailableError",
    "daemon_is_running",
]

#: A Unix socket path, or a (host, port) TCP address.
Address = Union[Path, str, tuple[str, int]]
_RECEIVE_BYTES: Final = 256 * 1024


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


class DaemonClient:
    """One connection to the daemon; connects (and says Hello) on first use."""

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
        self._sock: socket.socket | None = None
        self._frames = FrameBuffer()
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
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self._frames = FrameBuffer()
            self.welcome = None

    def connect(self) -> Welcome:
        """Connect and exchange Hello/Welcome (done implicitly by every request)."""
        if self.welcome is not None:
            return self.welcome
        self._sock = self._open_socket()
        answer = self._request(
            Hello(protocol=PROTOCOL_VERSION, client=self._client_name, token=self._tcp_token())
        )
        if not isinstance(answer, Welcome):
            self.close()
            raise DaemonError(f"the daemon answered Hello with {type(answer).__name__}")
        self.welcome = answer
        return answer

    def ping(self) -> float:
        """Round-trip a ``status`` query; return the seconds it took (raises if down)."""
        started = time.perf_counter()
        self.status()
        return time.perf_counter() - started

    def status(self) -> dict[str, Any]:
        """The daemon's ``status`` report (see ``uptake_aggregator.status``)."""
        return self.query("status")

    def query(
        self,
        report: str = "usage",
        filters: ReportFilters | Mapping[str, str | None] | None = None,
    ) -> dict[str, Any]:
        """Run a report on the daemon and return its JSON-able body.

        ``filters``: a ``ReportFilters`` or a mapping with its fields (since, until,
        account, user, feature). Raises ``QueryError`` if the daemon rejects the query.
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
        self.connect()
        answer = self._request(Query(report=report, filters=filters))  # type: ignore[arg-type]
        if not isinstance(answer, Result):
            raise DaemonError(f"the daemon answered Query with {type(answer).__name__}")
        return answer.body

    def send(self, events: Sequence[Event]) -> Ack:
        """Send one batch and return its ``Ack`` (sent by the daemon after the commit)."""
        self.connect()
        self._seq += 1
        answer = self._request(Batch(seq=self._seq, events=list(events)))
        if not isinstance(answer, Ack) or answer.seq != self._seq:
            raise DaemonError(f"the daemon answered Batch {self._seq} with {answer!r}")
        return answer

    def _tcp_token(self) -> str | None:
        if not isinstance(self.address, tuple) or self._token is not None:
            return self._token
        path = self._token_file or default_token_path()
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise DaemonUnavailableError(
                f"cannot read the daemon's token file {path} ({exc.strerror or exc}): "
                "is the daemon running with --tcp, and is this the right --token-file?"
            ) from None

    def _open_socket(self) -> socket.socket:
        address = self.address
        target: str | tuple[str, int]
        if isinstance(address, tuple):
            family, target, where = socket.AF_INET, address, f"127.0.0.1 port {address[1]}"
        else:
            family, target, where = socket.AF_UNIX, os.fspath(address), str(address)
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(self._timeout)
        try:
            sock.connect(target)
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise DaemonUnavailableError(
                f"no uptake daemon is running at {where}: start one with `usage daemon start`"
                " (or pass the right --socket)"
            ) from None
        except TimeoutError:
            sock.close()
            raise DaemonTimeoutError(
                f"the daemon at {where} did not accept the connection"
            ) from None
        except OSError as exc:
            sock.close()
            raise DaemonUnavailableError(
                f"cannot connect to the daemon at {where}: {exc.strerror or exc}"
            ) from None
        return sock

    def _request(self, message: Message) -> Message:
        sock = self._sock
        assert sock is not None
        try:
            sock.sendall(encode_frame(message))
            answer = self._receive(sock)
        except TimeoutError:
            self.close()
            raise DaemonTimeoutError(
                f"no answer from the daemon within {self._timeout:g} s"
            ) from None
        except OSError as exc:
            self.close()
            raise DaemonUnavailableError(
                f"the connection to the daemon broke: {exc.strerror or exc}"
            ) from None
        if isinstance(answer, ErrorFrame):
            if answer.code == ErrorCode.BAD_QUERY:
                raise QueryError(answer.message)
            self.close()
            raise DaemonRefusedError(answer.code, answer.message)
        return answer

    def _receive(self, sock: socket.socket) -> Message:
        payloads: list[bytes] = []
        while not payloads:
            chunk = sock.recv(_RECEIVE_BYTES)
            if not chunk:
                self.close()
                raise DaemonUnavailableError("the daemon closed the connection (is it stopping?)")
            try:
                payloads = self._frames.feed(chunk)
            except ProtocolError as exc:
                self.close()
                raise DaemonError(f"the daemon sent a bad frame: {exc.message}") from None
        if len(payloads) > 1:
            # Requests are answered one at a time, so this is a daemon bug.
            self.close()
            raise DaemonError("the daemon sent answers that were not asked for")
        try:
            return decode_message(payloads[0])
        except ProtocolError as exc:
            self.close()
            raise DaemonError(f"the daemon sent a bad message: {exc.message}") from None


def daemon_is_running(socket_path: Path | None = None, *, timeout: float = 2.0) -> bool:
    """True if a daemon answers a ``status`` query on ``socket_path`` (default socket)."""
    try:
        with DaemonClient(socket_path, timeout=timeout) as client:
            client.ping()
    except DaemonError:
        return False
    return True
