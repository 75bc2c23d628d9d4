"""Talking to the daemon: one blocking stream connection, used by the worker thread only.

Address: a Unix socket path, or ``tcp://127.0.0.1:PORT`` (then the ``Hello`` carries the
token from ``UPTAKE_TOKEN`` or the token file). Every socket operation has a timeout, so
a daemon that stalls costs the worker at most that long and never the host app.

Batches are pipelined: up to ``window`` ``Batch`` frames may await their ``Ack`` at once,
so encoding the next batch overlaps the daemon's commit of the previous one. Acks are
matched by ``seq``. An ``Error`` frame cannot name its batch, so the caller falls back to
one batch at a time to find the event the daemon refused (see ``_worker``).

Reconnects are paced by ``Backoff``: exponential from 50 ms to 30 s with "equal jitter"
(half the delay fixed, half random) so many clients of a restarted daemon do not all
reconnect in the same millisecond.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import struct
import time
from pathlib import Path
from typing import Final

import msgspec

from uptake.protocol import (
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    Ack,
    ErrorFrame,
    FrameBuffer,
    Hello,
    ProtocolError,
    Welcome,
    decode_message,
    encode_frame,
)

__all__ = [
    "Backoff",
    "Connection",
    "DaemonError",
    "RefusedError",
    "connect",
    "encode_batch_payload",
]


class DaemonError(Exception):
    """The daemon is unreachable, stalled, or broke the protocol: retry later."""


class RefusedError(DaemonError):
    """The daemon answered ``Error`` to a batch: some event in it is refused for good."""

    def __init__(self, frame: ErrorFrame) -> None:
        super().__init__(f"daemon refused a batch: {frame.code}: {frame.message}")
        self.frame = frame


_REFUSAL_CODES: Final = frozenset({"bad_frame", "frame_too_large", "bad_message", "bad_event"})


class _RawBatch(msgspec.Struct, tag="batch", tag_field="type"):
    """Encodes exactly like ``protocol.Batch`` but splices the pre-encoded event array."""

    seq: int
    events: msgspec.Raw


_encoder: Final = msgspec.msgpack.Encoder()
_LENGTH: Final = struct.Struct(">I")


def encode_batch_payload(seq: int, events: bytes) -> bytearray:
    """Return a complete ``Batch`` frame; ``events`` is the msgpack array of the events."""
    frame = bytearray()
    _encoder.encode_into(_RawBatch(seq, msgspec.Raw(events)), frame, _LENGTH.size)
    _LENGTH.pack_into(frame, 0, len(frame) - _LENGTH.size)
    return frame


class Backoff:
    """Delays between reconnect attempts: exponential, capped, with equal jitter."""

    def __init__(self, base: float = 0.05, cap: float = 30.0) -> None:
        self._base = base
        self._cap = cap
        self._failures = 0
        self.next_attempt = 0.0  # time.monotonic() before which we do not try again

    def failed(self) -> float:
        """Record a failed attempt; return the delay until the next one."""
        ceiling = min(self._cap, self._base * 2.0**self._failures)
        self._failures = min(self._failures + 1, 30)
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        self.next_attempt = time.monotonic() + delay
        return delay

    def succeeded(self) -> None:
        """Reset after a successful handshake."""
        self._failures = 0
        self.next_attempt = 0.0

    def ready(self) -> bool:
        """True when an attempt is allowed now."""
        return time.monotonic() >= self.next_attempt

    @property
    def failures(self) -> int:
        """Consecutive failed attempts."""
        return self._failures


class Connection:
    """A handshaken connection to the daemon; every method raises ``DaemonError`` on trouble."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._frames = FrameBuffer(MAX_FRAME_BYTES)
        self._pending: list[bytes] = []

    def close(self) -> None:
        """Close the socket (never ``shutdown()``: a forked child must not cut the parent's)."""
        with contextlib.suppress(OSError):
            self._sock.close()

    def is_stale(self) -> bool:
        """True if the daemon closed this idle connection (or sent something unasked).

        Checked before reusing a connection with nothing in flight, so a daemon restart
        costs a reconnect, not a failed batch and a trip through the spool.
        """
        if self._pending or self._frames.pending:
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
        except OSError as exc:
            raise DaemonError(f"sending to the daemon failed: {exc}") from None

    def receive(self, timeout: float) -> Ack | Welcome | ErrorFrame:
        """Wait at most ``timeout`` seconds for the next message from the daemon."""
        deadline = time.monotonic() + timeout
        while not self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DaemonError(f"the daemon did not answer within {timeout:.2f}s")
            try:
                self._sock.settimeout(remaining)
                chunk = self._sock.recv(65536)
            except OSError as exc:
                raise DaemonError(f"reading from the daemon failed: {exc}") from None
            if not chunk:
                raise DaemonError("the daemon closed the connection")
            try:
                self._pending.extend(self._frames.feed(chunk))
            except ProtocolError as exc:
                raise DaemonError(f"the daemon sent a bad frame: {exc.message}") from None
        payload = self._pending.pop(0)
        try:
            message = decode_message(payload)
        except ProtocolError as exc:
            raise DaemonError(f"the daemon sent a bad message: {exc.message}") from None
        if isinstance(message, (Ack, Welcome, ErrorFrame)):
            return message
        raise DaemonError(f"unexpected {type(message).__name__} from the daemon")

    def wait_ack(self, timeout: float) -> Ack:
        """Return the next ``Ack``; raise ``RefusedError`` on a refusal, ``DaemonError`` else."""
        message = self.receive(timeout)
        if isinstance(message, Ack):
            return message
        if isinstance(message, ErrorFrame):
            if message.code in _REFUSAL_CODES:
                raise RefusedError(message)
            raise DaemonError(f"daemon error {message.code}: {message.message}")
        raise DaemonError("unexpected Welcome from the daemon")


def _read_token(token: str | None, token_file: Path) -> str | None:
    if token:
        return token
    try:
        return token_file.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def connect(
    address: str, timeout: float, token: str | None = None, token_file: Path | None = None
) -> Connection:
    """Connect to ``address`` and complete the ``Hello``/``Welcome`` handshake."""
    deadline = time.monotonic() + timeout
    hello_token: str | None = None
    try:
        if address.startswith("tcp://"):
            host, _, port = address[len("tcp://") :].rpartition(":")
            sock = socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if token_file is not None or token:
                hello_token = _read_token(token, token_file or Path())
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(address)
            except BaseException:
                sock.close()
                raise
    except (OSError, ValueError) as exc:
        raise DaemonError(f"cannot connect to the uptake daemon at {address}: {exc}") from None
    connection = Connection(sock)
    try:
        connection.send(
            encode_frame(
                Hello(
                    protocol=PROTOCOL_VERSION,
                    client=f"uptake-python pid={os.getpid()}",
                    token=hello_token,
                )
            ),
            deadline - time.monotonic(),
        )
        answer = connection.receive(max(deadline - time.monotonic(), 0.001))
        if isinstance(answer, ErrorFrame):
            raise DaemonError(f"the daemon refused the handshake: {answer.code}: {answer.message}")
        if not isinstance(answer, Welcome):
            raise DaemonError(f"expected Welcome, got {type(answer).__name__}")
        if answer.protocol != PROTOCOL_VERSION:
            raise DaemonError(
                f"the daemon speaks protocol {answer.protocol}, this SDK {PROTOCOL_VERSION}"
            )
    except BaseException:
        connection.close()
        raise
    return connection
