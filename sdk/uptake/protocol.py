"""The contract shared by the SDK, the daemon and clients in other languages.

It names everything both sides of the socket agree on: the ``Event`` record and its limits
(``MAX_NAME_LENGTH``, ``MAX_PROPS``, ``MAX_EVENT_BYTES``, ``EVENT_KINDS``), the event and
session ids (``new_event_id``, ``content_event_id``, ...), and the wire protocol below.
The aggregator and the ``usage`` command import these names from here, never from the
SDK's private modules.

A stream carries frames: a 4-byte big-endian payload length, then one msgpack message.
Every message is a map with a ``type`` field naming its kind (a msgspec tagged union), so
a client in another language needs only a msgpack library. ``docs/protocol.md`` is the
reference for such clients.

Conversation::

    client -> Hello{protocol, client, token?}    daemon -> Welcome{protocol, daemon} | Error
    client -> Batch{seq, events}                 daemon -> Ack{seq, accepted, duplicates}
    client -> Query{report, filters}             daemon -> Result{report, body} | Error

The daemon sends ``Ack`` only after the batch is committed: an acknowledged event is
durable. A client that gets no ``Ack`` resends the batch (same ids); the daemon drops the
duplicates, so every event is stored exactly once.
"""

from __future__ import annotations

import struct
from typing import Annotated, Any, Final, Literal, Union

import msgspec

from uptake._ids import (
    content_event_id,
    event_id_time_us,
    new_event_id,
    new_event_ids,
    new_session_id,
)
from uptake._model import (
    EVENT_KINDS,
    MAX_EVENT_BYTES,
    MAX_NAME_LENGTH,
    MAX_PROPS,
    Event,
    EventKind,
    PropValue,
)

__all__ = [
    "EVENT_KINDS",
    "MAX_EVENT_BYTES",
    "MAX_FRAME_BYTES",
    "MAX_NAME_LENGTH",
    "MAX_PROPS",
    "PROTOCOL_VERSION",
    "Ack",
    "Batch",
    "ErrorCode",
    "ErrorFrame",
    "Event",
    "EventKind",
    "FrameBuffer",
    "Hello",
    "Message",
    "PropValue",
    "ProtocolError",
    "Query",
    "ReportFilters",
    "Result",
    "Welcome",
    "content_event_id",
    "decode_message",
    "encode_frame",
    "encode_message",
    "event_id_time_us",
    "new_event_id",
    "new_event_ids",
    "new_session_id",
]

PROTOCOL_VERSION: Final = 1
#: Largest payload a peer accepts; a longer frame gets ``Error{frame_too_large}`` and a close.
MAX_FRAME_BYTES: Final = 16 * 1024 * 1024

_HEADER = struct.Struct(">I")


class ErrorCode:
    """The ``code`` values an ``Error`` frame may carry (stable strings)."""

    BAD_FRAME: Final = "bad_frame"  # not msgpack, or not a known message
    FRAME_TOO_LARGE: Final = "frame_too_large"  # payload over MAX_FRAME_BYTES
    BAD_MESSAGE: Final = "bad_message"  # msgpack, but a field has the wrong type/value
    BAD_EVENT: Final = "bad_event"  # an event breaks a rule the schema cannot express
    PROTOCOL_VERSION: Final = "protocol_version"  # Hello with an unsupported version
    UNAUTHORIZED: Final = "unauthorized"  # TCP Hello without the right token
    UNEXPECTED: Final = "unexpected_message"  # e.g. Batch before Hello
    BAD_QUERY: Final = "bad_query"  # unknown report or bad filter
    INTERNAL: Final = "internal"  # the daemon failed; the client should retry later


class Hello(msgspec.Struct, tag="hello", tag_field="type", omit_defaults=True):
    """First message of every connection, from the client."""

    protocol: int
    client: Annotated[str, msgspec.Meta(max_length=200)]
    token: str | None = None


class Welcome(msgspec.Struct, tag="welcome", tag_field="type"):
    """The daemon's answer to a valid ``Hello``."""

    protocol: int
    daemon: str


class Batch(msgspec.Struct, tag="batch", tag_field="type"):
    """Events to store; ``seq`` is chosen by the client and echoed in the ``Ack``."""

    seq: Annotated[int, msgspec.Meta(ge=0)]
    events: list[Event]


class Ack(msgspec.Struct, tag="ack", tag_field="type"):
    """Sent after the batch ``seq`` is committed. ``accepted + duplicates == len(events)``."""

    seq: int
    accepted: int
    duplicates: int


class ReportFilters(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True):
    """Report window and filters; dates are ``YYYY-MM-DD`` (UTC), the window half-open."""

    since: str | None = None
    until: str | None = None
    account: str | None = None
    user: str | None = None
    feature: str | None = None
    #: The product's core features for ``activation`` (``usage report --core``); None:
    #: the report's configured ones, if any. Optional on the wire (docs/protocol.md).
    core: list[str] | None = None


class Query(msgspec.Struct, tag="query", tag_field="type"):
    """Ask for a report: ``usage`` (the report of docs/metrics.md) or ``status`` (health)."""

    report: Literal["usage", "status"]
    filters: ReportFilters = msgspec.field(default_factory=ReportFilters)


class Result(msgspec.Struct, tag="result", tag_field="type"):
    """The answer to a ``Query``: ``body`` is the JSON-able report."""

    report: str
    body: dict[str, Any]


class ErrorFrame(msgspec.Struct, tag="error", tag_field="type"):
    """Bad input or a failure, named by ``code`` (see ``ErrorCode``)."""

    code: str
    message: str


Message = Union[Hello, Welcome, Batch, Ack, Query, Result, ErrorFrame]

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Message] = msgspec.msgpack.Decoder(Message)


class ProtocolError(Exception):
    """A peer sent something the protocol does not allow; ``code`` is an ``ErrorCode``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_frame(self) -> ErrorFrame:
        """Return the ``Error`` message that reports this problem to the peer."""
        return ErrorFrame(code=self.code, message=self.message)


def encode_message(message: Message) -> bytes:
    """Encode one message as msgpack, without the length prefix."""
    return _encoder.encode(message)


def encode_frame(message: Message) -> bytes:
    """Encode one message as a complete frame (length prefix + msgpack).

    >>> encode_frame(Ack(seq=1, accepted=2, duplicates=0))[:4]
    b'\\x00\\x00\\x00)'
    """
    payload = _encoder.encode(message)
    return _HEADER.pack(len(payload)) + payload


def decode_message(payload: bytes | memoryview) -> Message:
    """Decode one frame payload; raise ``ProtocolError`` naming what was wrong."""
    try:
        return _decoder.decode(payload)
    except msgspec.ValidationError as exc:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"invalid message: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(ErrorCode.BAD_FRAME, f"not a msgpack message: {exc}") from None


class FrameBuffer:
    """Split a byte stream into frame payloads, whatever the chunking.

    >>> buf = FrameBuffer()
    >>> frame = encode_frame(Ack(seq=1, accepted=1, duplicates=0))
    >>> buf.feed(frame[:3]), len(buf.feed(frame[3:]))
    ([], 1)
    """

    __slots__ = ("_buffer", "_max_frame")

    def __init__(self, max_frame: int = MAX_FRAME_BYTES) -> None:
        self._buffer = bytearray()
        self._max_frame = max_frame

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add received bytes; return the payloads of the frames now complete.

        Raises ``ProtocolError(frame_too_large)`` as soon as a header announces a payload
        over the limit, before buffering it.
        """
        self._buffer += chunk
        payloads: list[bytes] = []
        offset = 0
        buffer = self._buffer
        while len(buffer) - offset >= 4:
            (length,) = _HEADER.unpack_from(buffer, offset)
            if length > self._max_frame:
                raise ProtocolError(
                    ErrorCode.FRAME_TOO_LARGE,
                    f"frame of {length} bytes exceeds the {self._max_frame}-byte limit",
                )
            end = offset + 4 + length
            if len(buffer) < end:
                break
            payloads.append(bytes(buffer[offset + 4 : end]))
            offset = end
        if offset:
            del buffer[:offset]
        return payloads

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a whole frame."""
        return len(self._buffer)
