"""One client connection: handshake, batches to the writer, acks after commit, queries.

Each connection runs two tasks. The reader splits the byte stream into frames, decodes
them (msgspec), checks what the schema cannot express, hands batches to the writer and
queries to the daemon. The sender writes the answers in order: an ``Ack`` waits for its
batch's commit, so a client may pipeline batches and still gets acks strictly after each
commit. The number of answers in flight is bounded, which pushes back on a client that
sends faster than the writer commits.

Bad input of any kind ends in an ``Error`` frame naming the problem (after the acks of the
batches received before it), then the connection closes; other connections never notice.
A client that stalls in the middle of a frame, never says ``Hello`` or stops reading its
answers is cut off by a timeout, so it holds nothing but its own socket.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Union

import anyio
import msgspec
from anyio.abc import ByteStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from uptake.protocol import (
    MAX_EVENT_BYTES,
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
    Result,
    Welcome,
    decode_message,
    encode_frame,
)
from uptake_aggregator.daemon.writer import BatchWriter, PendingBatch
from uptake_aggregator.errors import DaemonError
from uptake_aggregator.units import DAY_US

__all__ = ["MAX_FUTURE_US", "Connection", "ConnectionSettings", "QueryAnswerer"]

#: Events dated further ahead than this are refused: a wrong clock, not usage.
MAX_FUTURE_US: Final = DAY_US
_RECEIVE_BYTES: Final = 256 * 1024

_log = logging.getLogger("uptake_aggregator.daemon.connection")
_encode_event = msgspec.msgpack.Encoder().encode

#: Answers a query; raises ``ProtocolError`` (bad_query / internal) when it cannot.
QueryAnswerer = Callable[[Query], Awaitable[Result]]
# An answer ready to send, or a batch whose Ack waits for its commit.
_Outbound = Union[Message, tuple[int, PendingBatch]]


@dataclass(frozen=True)
class ConnectionSettings:
    """Per-connection limits (seconds, or None for no limit)."""

    #: A new connection must send ``Hello`` within this time.
    hello_timeout: float = 10.0
    #: Once a frame has started arriving, all of it must arrive within this time.
    frame_timeout: float = 30.0
    #: A connection with nothing in flight may stay silent this long (SDKs keep theirs open).
    idle_timeout: float | None = None
    #: Sending one answer may take this long before the client counts as stalled.
    send_timeout: float = 30.0
    #: Answers (mostly acks waiting for a commit) in flight per connection.
    max_inflight: int = 64


class Connection:
    """Serve one client stream until it closes, misbehaves or the daemon stops."""

    def __init__(
        self,
        stream: ByteStream,
        *,
        peer: str,
        writer: BatchWriter,
        answer_query: QueryAnswerer,
        daemon_name: str,
        token: str | None = None,
        settings: ConnectionSettings | None = None,
    ) -> None:
        self._stream = stream
        self.peer = peer
        self._writer = writer
        self._answer_query = answer_query
        self._daemon_name = daemon_name
        self._token = token
        self._settings = settings or ConnectionSettings()
        self._read_scope = anyio.CancelScope()
        self._greeted = False
        self._failed = False

    def stop_reading(self) -> None:
        """Read no more frames; answers for batches already received are still sent."""
        self._read_scope.cancel()

    async def serve(self) -> None:
        """Run the connection to its end and close the stream; never raises for bad input."""
        send_out, receive_out = anyio.create_memory_object_stream[_Outbound](
            self._settings.max_inflight
        )
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._send_loop, receive_out, tasks.cancel_scope)
                async with send_out:
                    with self._read_scope:
                        await self._read_loop(send_out)
        finally:
            with anyio.CancelScope(shield=True):
                if self._failed:
                    await self._linger()
                await self._stream.aclose()

    async def _linger(self) -> None:
        # Closing a TCP socket with unread input sends RST, which can destroy the Error
        # frame before the client reads it: end our side, then discard input briefly.
        try:
            await self._stream.send_eof()
            with anyio.move_on_after(1.0):
                while await self._stream.receive(_RECEIVE_BYTES):
                    pass
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    async def _read_loop(self, out: MemoryObjectSendStream[_Outbound]) -> None:
        try:
            await self._read_frames(out)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return  # the sender ended (the client stopped reading): nothing more to answer
        except ProtocolError as exc:
            _log.warning("closing connection %s: %s: %s", self.peer, exc.code, exc.message)
            self._failed = True
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await out.send(exc.to_frame())

    async def _read_frames(self, out: MemoryObjectSendStream[_Outbound]) -> None:
        frames = FrameBuffer()
        stream = self._stream
        settings = self._settings
        frame_deadline: float | None = None
        while True:
            # Not even receive while a transaction commits (see BatchWriter.wait_idle):
            # the bytes wait in the socket buffer, and with several clients the wake-ups
            # alone made each stored event ~20% dearer.
            await self._writer.wait_idle()
            if not self._greeted:
                timeout: float | None = settings.hello_timeout
            elif frames.pending:
                if frame_deadline is None:
                    frame_deadline = time.monotonic() + settings.frame_timeout
                timeout = max(0.0, frame_deadline - time.monotonic())
            else:
                timeout = settings.idle_timeout
            try:
                with anyio.fail_after(timeout):
                    chunk = await stream.receive(_RECEIVE_BYTES)
            except TimeoutError:
                self._raise_timeout(frames.pending)
                return  # idle connection: close quietly
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                if frames.pending:
                    raise ProtocolError(
                        ErrorCode.BAD_FRAME,
                        f"connection closed inside a frame ({frames.pending} bytes of an "
                        "incomplete frame were dropped)",
                    ) from None
                return
            # A commit may have begun while this read waited: decode after it.
            await self._writer.wait_idle()
            for payload in frames.feed(chunk):
                await self._handle(decode_message(payload), out)
            if not frames.pending:
                frame_deadline = None

    def _raise_timeout(self, pending: int) -> None:
        settings = self._settings
        if not self._greeted:
            raise ProtocolError(
                ErrorCode.UNEXPECTED,
                f"no Hello within {settings.hello_timeout:g} s of connecting",
            )
        if pending:
            raise ProtocolError(
                ErrorCode.BAD_FRAME,
                f"incomplete frame: {pending} bytes received, the rest did not arrive within "
                f"{settings.frame_timeout:g} s",
            )

    async def _handle(self, message: Message, out: MemoryObjectSendStream[_Outbound]) -> None:
        if isinstance(message, Batch):
            if not self._greeted:
                raise ProtocolError(ErrorCode.UNEXPECTED, "Batch before Hello: send Hello first")
            await self._handle_batch(message, out)
        elif isinstance(message, Hello):
            await out.send(self._welcome(message))
        elif isinstance(message, Query):
            if not self._greeted:
                raise ProtocolError(ErrorCode.UNEXPECTED, "Query before Hello: send Hello first")
            try:
                answer: Message = await self._answer_query(message)
            except ProtocolError as exc:
                # A refused query is an answer, not a broken client: keep the connection.
                answer = exc.to_frame()
            await out.send(answer)
        else:
            kind = type(message).__name__
            raise ProtocolError(
                ErrorCode.UNEXPECTED, f"clients may not send {kind} messages (daemon-only)"
            )

    def _welcome(self, hello: Hello) -> Welcome:
        if self._greeted:
            raise ProtocolError(ErrorCode.UNEXPECTED, "Hello sent twice on one connection")
        if hello.protocol != PROTOCOL_VERSION:
            raise ProtocolError(
                ErrorCode.PROTOCOL_VERSION,
                f"client speaks protocol {hello.protocol}, this daemon speaks "
                f"{PROTOCOL_VERSION}: upgrade the older side",
            )
        if self._token is not None and (
            hello.token is None or not hmac.compare_digest(hello.token, self._token)
        ):
            raise ProtocolError(
                ErrorCode.UNAUTHORIZED,
                "TCP clients must send the token from the daemon's token file in Hello"
                if hello.token is None
                else "wrong token: read it again from the daemon's token file",
            )
        self._greeted = True
        return Welcome(protocol=PROTOCOL_VERSION, daemon=self._daemon_name)

    async def _handle_batch(self, batch: Batch, out: MemoryObjectSendStream[_Outbound]) -> None:
        events = batch.events
        if not events:
            await out.send(Ack(seq=batch.seq, accepted=0, duplicates=0))
            return
        limit = time.time_ns() // 1000 + MAX_FUTURE_US
        if max([event.ts for event in events]) > limit:
            raise _future_event(events, limit)
        # Only props can push an event past 8 KiB (six 200-char strings stay under it), so
        # only events with props are measured: the SDK checks this too, other clients may not.
        for index, event in enumerate(events):
            if event.props and len(_encode_event(event)) > MAX_EVENT_BYTES:
                raise _oversize_event(index, event)
        pending = await self._writer.submit(events)
        # Queued means it will be committed: its Ack must follow even if the daemon is
        # stopping and this read is being cancelled right now.
        with anyio.CancelScope(shield=True):
            await out.send((batch.seq, pending))

    async def _send_loop(
        self, answers: MemoryObjectReceiveStream[_Outbound], tasks: anyio.CancelScope
    ) -> None:
        stream = self._stream
        send_timeout = self._settings.send_timeout
        async with answers:
            async for answer in answers:
                if isinstance(answer, tuple):
                    seq, pending = answer
                    try:
                        result = await pending.wait()
                    except DaemonError as exc:
                        message: Message = ErrorFrame(code=ErrorCode.INTERNAL, message=str(exc))
                        self._failed = True
                        await self._send_last(message)
                        tasks.cancel()
                        return
                    message = Ack(seq=seq, accepted=result.accepted, duplicates=result.duplicates)
                else:
                    message = answer
                try:
                    with anyio.fail_after(send_timeout):
                        await stream.send(encode_frame(message))
                except (TimeoutError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    _log.info("client %s stopped reading its answers; closing", self.peer)
                    tasks.cancel()
                    return

    async def _send_last(self, message: Message) -> None:
        try:
            with anyio.fail_after(self._settings.send_timeout):
                await self._stream.send(encode_frame(message))
        except (TimeoutError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass


def _oversize_event(index: int, event: Event) -> ProtocolError:
    return ProtocolError(
        ErrorCode.BAD_EVENT,
        f"event {index} (id {event.id.hex()}) encodes to {len(_encode_event(event))} bytes, "
        f"over the {MAX_EVENT_BYTES}-byte limit: send fewer or shorter props",
    )


def _future_event(events: list[Event], limit: int) -> ProtocolError:
    index, event = next((i, e) for i, e in enumerate(events) if e.ts > limit)
    return ProtocolError(
        ErrorCode.BAD_EVENT,
        f"event {index} (id {event.id.hex()}) has ts {event.ts}, more than 1 day in the "
        "future (microseconds since the epoch, UTC): fix the client's clock or its ts unit",
    )
