"""Bad input of every kind gets an Error frame naming it; the daemon and its data survive."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.daemon import DaemonProcess, RawConnection, make_events, stored_ids
from uptake.protocol import (
    MAX_FRAME_BYTES,
    Ack,
    Batch,
    ErrorFrame,
    FrameBuffer,
    Hello,
    ProtocolError,
    Query,
    Result,
    Welcome,
    decode_message,
    encode_frame,
)
from uptake_aggregator.daemon.connection import MAX_FUTURE_US

_pack = msgspec.msgpack.encode


def _frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def _batch_payload(**event_overrides: Any) -> bytes:
    [event] = make_events(1)
    fields = msgspec.to_builtins(event, builtin_types=(bytes,))
    fields.update(event_overrides)
    return _pack({"type": "batch", "seq": 1, "events": [fields]})


def _assert_error(messages: list[Any], code: str, *words: str) -> None:
    errors = [m for m in messages if isinstance(m, ErrorFrame)]
    assert errors, f"expected an Error frame, got {messages}"
    assert errors[-1].code == code
    for word in words:
        assert word in errors[-1].message, errors[-1].message


def _assert_daemon_still_ingests(daemon: DaemonProcess) -> None:
    events = make_events(50, start=time.time_ns() // 1000 - 10**9)
    with daemon.client() as client:
        ack = client.send(events)
    assert ack.accepted == 50
    assert {e.id for e in events} <= set(stored_ids(daemon.db))


BAD_INPUTS: dict[str, tuple[Callable[[], bytes], str, tuple[str, ...]]] = {
    "garbage": (lambda: _frame(b"\xc1\xc1 garbage"), "bad_frame", ("msgpack",)),
    "not a map": (lambda: _frame(_pack([1, 2, 3])), "bad_message", ()),
    "unknown message type": (
        lambda: _frame(_pack({"type": "launch", "x": 1})),
        "bad_message",
        ("launch",),
    ),
    "wrong field type": (
        lambda: _frame(_pack({"type": "batch", "seq": "one", "events": []})),
        "bad_message",
        ("seq",),
    ),
    "unknown event kind": (
        lambda: _frame(_batch_payload(kind="teleport")),
        "bad_message",
        ("kind",),
    ),
    "id of the wrong length": (
        lambda: _frame(_batch_payload(id=b"short")),
        "bad_message",
        ("id",),
    ),
    "timestamp far in the future": (
        lambda: _frame(_batch_payload(ts=time.time_ns() // 1000 + 2 * MAX_FUTURE_US)),
        "bad_event",
        ("future",),
    ),
    "event over 8 KiB": (
        lambda: _frame(_batch_payload(props={f"p{i}": "x" * 300 for i in range(30)})),
        "bad_event",
        ("8192",),
    ),
    "unknown event field": (
        lambda: _frame(_batch_payload(colour="red")),
        "bad_message",
        ("colour",),
    ),
    "oversize header": (
        lambda: struct.pack(">I", MAX_FRAME_BYTES + 1) + b"x" * 100,
        "frame_too_large",
        ("16777216",),
    ),
    "daemon-only message": (
        lambda: encode_frame(Ack(seq=1, accepted=1, duplicates=0)),
        "unexpected_message",
        ("Ack",),
    ),
    "second hello": (
        lambda: encode_frame(Hello(protocol=1, client="x")),
        "unexpected_message",
        ("twice",),
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_gets_a_named_error_and_close(daemon: DaemonProcess, name: str) -> None:
    make_bytes, code, words = BAD_INPUTS[name]
    with RawConnection(daemon.socket) as raw:
        assert isinstance(raw.hello(), Welcome)
        raw.send_raw(make_bytes())
        messages = raw.receive_all()  # the daemon closes after the error
    _assert_error(messages, code, *words)
    _assert_daemon_still_ingests(daemon)


def test_batch_before_hello(daemon: DaemonProcess) -> None:
    with RawConnection(daemon.socket) as raw:
        raw.send(Batch(seq=1, events=make_events(3)))
        _assert_error(raw.receive_all(), "unexpected_message", "Hello")


def test_unsupported_protocol_version(daemon: DaemonProcess) -> None:
    with RawConnection(daemon.socket) as raw:
        raw.send(Hello(protocol=99, client="from the future"))
        _assert_error(raw.receive_all(), "protocol_version", "99")


def test_truncated_frame(daemon: DaemonProcess) -> None:
    frame = encode_frame(Batch(seq=1, events=make_events(20)))
    with RawConnection(daemon.socket) as raw:
        raw.hello()
        raw.send_raw(frame[: len(frame) // 2])
        raw.end_writing()
        _assert_error(raw.receive_all(), "bad_frame", "incomplete")


def test_stalled_frame_times_out(daemon: DaemonProcess) -> None:
    # The module's daemon allows 2 s for a started frame to complete.
    frame = encode_frame(Batch(seq=1, events=make_events(20)))
    with RawConnection(daemon.socket) as raw:
        raw.hello()
        raw.send_raw(frame[:10])
        _assert_error(raw.receive_all(), "bad_frame", "did not arrive")


def test_silent_client_is_dropped_without_hello(daemon: DaemonProcess) -> None:
    with RawConnection(daemon.socket) as raw:
        _assert_error(raw.receive_all(), "unexpected_message", "Hello")


def test_acks_before_the_error_are_sent(daemon: DaemonProcess) -> None:
    good = make_events(100)
    with RawConnection(daemon.socket) as raw:
        raw.hello()
        raw.send_raw(encode_frame(Batch(seq=7, events=good)) + _frame(b"\xc1"))
        messages = raw.receive_all()
    assert isinstance(messages[0], Ack) and messages[0].seq == 7
    _assert_error(messages, "bad_frame")
    assert {e.id for e in good} <= set(stored_ids(daemon.db))


# --- property test: generated hostile frames at a live daemon --------------------------

_msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | st.floats(allow_nan=False),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_message_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["hello", "batch", "query", "ack", "welcome", "error", "nope"])},
    optional={
        "seq": _msgpack_values,
        "events": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "id": st.binary(min_size=0, max_size=20) | _msgpack_values,
                    "ts": st.integers(-(2**63), 2**63 - 1) | _msgpack_values,
                    "kind": st.sampled_from(["feature", "login", "bogus"]) | _msgpack_values,
                    "user": _msgpack_values,
                    "props": _msgpack_values,
                },
            ),
            max_size=3,
        ),
        "protocol": _msgpack_values,
        "client": _msgpack_values,
        "report": _msgpack_values,
    },
)


def _breaks_protocol(stream: bytes, greeted: bool) -> bool:
    """Whether a correct daemon must answer ``stream`` with an Error frame."""
    frames = FrameBuffer()
    try:
        payloads = frames.feed(stream)
        messages = [decode_message(payload) for payload in payloads]
    except ProtocolError:
        return True
    if frames.pending:
        return True
    horizon = time.time_ns() // 1000 + MAX_FUTURE_US
    for message in messages:
        if isinstance(message, Hello):
            if greeted or message.protocol != 1:
                return True
            greeted = True
        elif isinstance(message, (Batch, Query)):
            if not greeted:
                return True
            if isinstance(message, Batch) and any(e.ts > horizon for e in message.events):
                return True
        else:
            return True
    return False


@st.composite
def hostile_streams(draw: st.DrawFn) -> bytes:
    """Bytes a broken or malicious client might send after its Hello."""
    kind = draw(st.sampled_from(["garbage", "framed_garbage", "message", "truncated", "oversize"]))
    if kind == "garbage":
        return draw(st.binary(min_size=1, max_size=200))
    if kind == "framed_garbage":
        return _frame(draw(st.binary(max_size=200)))
    if kind == "message":
        return _frame(_pack(draw(_message_like)))
    if kind == "truncated":
        whole = _frame(_pack(draw(_message_like)))
        return whole[: draw(st.integers(1, len(whole) - 1))]
    return struct.pack(">I", draw(st.integers(MAX_FRAME_BYTES + 1, 2**32 - 1))) + draw(
        st.binary(max_size=50)
    )


@given(stream=hostile_streams(), greet=st.booleans())
def test_hostile_frames_never_hurt_the_daemon(
    daemon: DaemonProcess, stream: bytes, greet: bool
) -> None:
    before = len(stored_ids(daemon.db))
    with RawConnection(daemon.socket) as raw:
        if greet:
            assert isinstance(raw.hello(), Welcome)
        try:
            raw.send_raw(stream)
            raw.end_writing()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon already answered and closed: that is allowed
        messages = raw.receive_all()
    # Whatever came back is a well-formed answer; input that breaks the protocol ends
    # with an Error frame.
    assert all(isinstance(m, (ErrorFrame, Ack, Welcome, Result)) for m in messages)
    if _breaks_protocol(stream, greet):
        assert messages and isinstance(messages[-1], ErrorFrame), messages
    after = stored_ids(daemon.db)
    assert len(after) >= before  # nothing stored was lost
    assert len(after) == len(set(after))
    _assert_daemon_still_ingests(daemon)
