"""A minimal daemon speaking the wire protocol, for SDK tests (no SQLite, no anyio).

It stores events by id like the real daemon (so duplicates are counted, not stored twice)
and can misbehave on demand through ``mode``:

* ``"ok"``: ``Hello`` -> ``Welcome``, ``Batch`` -> ``Ack``;
* ``"refuse"``: answers ``Hello`` with ``Error{internal}``, closes on ``Batch``;
* ``"stall"``: completes the handshake, reads batches, never acknowledges (``stalled``
  lists the encoded size of each batch it left unanswered). A connection that stalled
  stays stalled, like a hung daemon, when ``mode`` changes: only the next connections
  see the new mode (else a batch read after the change would be stored and acknowledged
  ahead of the earlier ones left unanswered, an order no daemon produces);
* ``"close_mid_batch"``: reads a batch, stores nothing, closes without ``Ack``;
* ``"ack_then_close"``: stores the batch, then closes before sending the ``Ack`` (a lost Ack).

``refuse_names``: a ``Batch`` containing a feature of one of these names is answered with
``Error{bad_event}`` and the connection closed, like the daemon refusing an event.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from uptake.protocol import (
    PROTOCOL_VERSION,
    Ack,
    Batch,
    ErrorFrame,
    Event,
    FrameBuffer,
    Hello,
    ProtocolError,
    Welcome,
    decode_message,
    encode_frame,
)

__all__ = ["FakeDaemon", "short_tmpdir"]


@contextlib.contextmanager
def short_tmpdir() -> Iterator[Path]:
    """A /tmp directory with a short path (Unix socket paths must stay < 100 chars)."""
    path = Path(tempfile.mkdtemp(prefix="up", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class FakeDaemon:
    """A protocol-speaking server in a thread; ``start()`` / ``stop()`` may be repeated."""

    def __init__(self, address: str, token: str | None = None) -> None:
        self.address = address
        self.token = token
        self.mode = "ok"
        self.refuse_names: set[str] = set()
        self.stored: dict[bytes, Event] = {}
        self.order: list[bytes] = []  # ids in the order first stored
        self.duplicates = 0
        self.batches = 0
        self.stalled: list[int] = []
        self.hellos: list[Hello] = []
        self._lock = threading.Condition()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._connections: list[socket.socket] = []
        self._running = False

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> FakeDaemon:
        """Listen (again) on the address."""
        if self.address.startswith("tcp://"):
            host, _, port = self.address[6:].rpartition(":")
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, int(port)))
            if int(port) == 0:
                self.address = f"tcp://{host}:{listener.getsockname()[1]}"
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.address)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(self.address)
        listener.listen(64)
        listener.settimeout(0.05)
        self._listener = listener
        self._running = True
        thread = threading.Thread(target=self._accept_loop, name="fake-daemon", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop listening and drop every connection (the address becomes unreachable)."""
        self._running = False
        for thread in self._threads:
            thread.join(5)
        self._threads = []
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if not self.address.startswith("tcp://"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.address)

    def __enter__(self) -> FakeDaemon:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- observing -------------------------------------------------------------------
    def events(self) -> list[Event]:
        """Stored events, in the order they were first stored."""
        with self._lock:
            return [self.stored[event_id] for event_id in self.order]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Event]:
        """Wait until at least ``count`` events are stored; return them."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.stored) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._lock.wait(remaining)
        return self.events()

    def features(self) -> list[str]:
        """Names of the stored feature events, in storage order."""
        return [event.name or "" for event in self.events() if event.kind == "feature"]

    # -- serving ---------------------------------------------------------------------
    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while self._running:
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.settimeout(0.05)
            with self._lock:
                self._connections.append(connection)
            thread = threading.Thread(
                target=self._serve, args=(connection,), name="fake-daemon-conn", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _serve(self, connection: socket.socket) -> None:
        frames = FrameBuffer()
        greeted = False
        stalled = False
        try:
            while self._running:
                try:
                    chunk = connection.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                try:
                    payloads = frames.feed(chunk)
                except ProtocolError as exc:
                    connection.sendall(encode_frame(exc.to_frame()))
                    return
                for payload in payloads:
                    message = decode_message(payload)
                    if isinstance(message, Hello):
                        self.hellos.append(message)
                        if self.mode == "refuse" or (self.token and message.token != self.token):
                            code = "internal" if self.mode == "refuse" else "unauthorized"
                            connection.sendall(encode_frame(ErrorFrame(code, "go away")))
                            return
                        greeted = True
                        connection.sendall(encode_frame(Welcome(PROTOCOL_VERSION, "fake")))
                    elif isinstance(message, Batch) and greeted:
                        mode = "stall" if stalled else self.mode
                        stalled = mode == "stall"
                        if not self._batch(connection, message, mode):
                            return
                    else:
                        connection.sendall(encode_frame(ErrorFrame("unexpected_message", "?")))
                        return
        except OSError:
            return
        finally:
            connection.close()

    def _batch(self, connection: socket.socket, batch: Batch, mode: str) -> bool:
        if mode == "stall":
            with self._lock:
                self.stalled.append(len(encode_frame(batch)))
            return True
        if mode in ("close_mid_batch", "refuse"):
            return False
        if any(event.name in self.refuse_names for event in batch.events):
            connection.sendall(encode_frame(ErrorFrame("bad_event", "refused name")))
            return False
        accepted = duplicates = 0
        with self._lock:
            self.batches += 1
            for event in batch.events:
                if event.id in self.stored:
                    duplicates += 1
                else:
                    self.stored[event.id] = event
                    self.order.append(event.id)
                    accepted += 1
            self.duplicates += duplicates
            self._lock.notify_all()
        if mode == "ack_then_close":
            return False
        connection.sendall(encode_frame(Ack(batch.seq, accepted, duplicates)))
        return True
