"""The wire protocol: frames survive any chunking, bad input is named, ids sort by time."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import events
from uptake._ids import (
    content_event_id,
    event_id_time_us,
    new_event_id,
    new_event_ids,
    new_session_id,
)
from uptake._model import Event
from uptake.protocol import (
    Ack,
    Batch,
    ErrorCode,
    FrameBuffer,
    Hello,
    ProtocolError,
    Query,
    ReportFilters,
    decode_message,
    encode_frame,
    encode_message,
)


@given(st.lists(events(), max_size=20), st.integers(min_value=0, max_value=2**31))
def test_batch_round_trips_through_frames(batch_events: list[Event], seq: int) -> None:
    batch = Batch(seq=seq, events=batch_events)
    assert decode_message(encode_message(batch)) == batch


@given(
    st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=10),
    st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=30),
)
def test_frame_buffer_reassembles_any_chunking(acks: list[int], cuts: list[int]) -> None:
    messages = [Ack(seq=i, accepted=n, duplicates=0) for i, n in enumerate(acks)]
    stream = b"".join(encode_frame(m) for m in messages)
    buffer = FrameBuffer()
    got = []
    position = 0
    for cut in cuts * (len(stream) // max(sum(cuts), 1) + 1):
        got += [decode_message(p) for p in buffer.feed(stream[position : position + cut])]
        position += cut
        if position >= len(stream):
            break
    got += [decode_message(p) for p in buffer.feed(stream[position:])]
    assert got == messages
    assert buffer.pending == 0


def test_oversize_frame_is_refused_before_buffering() -> None:
    buffer = FrameBuffer(max_frame=100)
    with pytest.raises(ProtocolError) as info:
        buffer.feed((101).to_bytes(4, "big") + b"x")
    assert info.value.code == ErrorCode.FRAME_TOO_LARGE


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\xc1garbage", ErrorCode.BAD_FRAME),
        (msgspec.msgpack.encode({"type": "nope"}), ErrorCode.BAD_MESSAGE),
        (msgspec.msgpack.encode({"type": "batch", "seq": "x", "events": []}), "bad_message"),
        (
            msgspec.msgpack.encode(
                {"type": "batch", "seq": 1, "events": [{"id": b"short", "ts": 1, "kind": "login"}]}
            ),
            ErrorCode.BAD_MESSAGE,
        ),
        (
            msgspec.msgpack.encode(
                {"type": "batch", "seq": 1, "events": [{"id": b"x" * 16, "ts": 1, "kind": "zap"}]}
            ),
            ErrorCode.BAD_MESSAGE,
        ),
    ],
)
def test_bad_payloads_raise_named_protocol_errors(payload: bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_message(payload)
    assert info.value.code == code
    assert info.value.to_frame().code == code


def test_messages_are_maps_with_a_type_field() -> None:
    raw = msgspec.msgpack.decode(encode_message(Hello(protocol=1, client="py")))
    assert raw == {"type": "hello", "protocol": 1, "client": "py"}
    query = decode_message(encode_message(Query(report="usage")))
    assert query == Query(report="usage", filters=ReportFilters())


@given(st.lists(st.integers(min_value=0, max_value=2**47 * 1000), min_size=2, max_size=50))
def test_ids_sort_by_time_and_encode_it(timestamps: list[int]) -> None:
    ids = new_event_ids(sorted(timestamps))
    assert all(len(i) == 16 for i in ids)
    assert [event_id_time_us(i) for i in ids] == sorted(timestamps)
    times_of_sorted_ids = [event_id_time_us(i) for i in sorted(ids)]
    assert times_of_sorted_ids == sorted(timestamps)
    assert ids[0][6] >> 4 == 7  # UUID version nibble
    assert ids[0][8] >> 6 == 0b10  # RFC 9562 variant


_LANE_EDGES = [0, 1, 999, 1000, 1001, 2**32, 2**47 * 1000, 2**53 - 1, 2**53, 2**64 - 1, -1]


@given(
    st.lists(
        st.one_of(
            st.integers(min_value=0, max_value=2**53 - 1),
            st.sampled_from(_LANE_EDGES),
            st.integers(min_value=1_600_000_000_000_000, max_value=2_000_000_000_000_000),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_batch_ids_have_the_time_half_of_single_ids(timestamps: list[int]) -> None:
    """The batch's big-int lane arithmetic (and its fallback) equals the per-id formula."""
    # 16 or more timestamps take the lanes (unless one is out of their range).
    for batch in (timestamps, timestamps * 16, [ts for ts in timestamps * 16 if 0 <= ts < 2**53]):
        ids = new_event_ids(batch)
        assert [i[:8] for i in ids] == [new_event_id(ts)[:8] for ts in batch]
        assert all(i[8] >> 6 == 0b10 for i in ids)


def test_content_ids_are_deterministic_and_distinct() -> None:
    assert content_event_id(5, b"a") == content_event_id(5, b"a")
    assert content_event_id(5, b"a") != content_event_id(5, b"b")
    assert new_event_id(5) != new_event_id(5)


@given(st.lists(st.integers(min_value=0, max_value=2**48 * 10**6 - 1), min_size=2, max_size=50))
def test_session_ids_sort_by_start_time_and_are_distinct(starts_ns: list[int]) -> None:
    """Generated session ids grow with time (the daemon's sessions table appends them)."""
    ids = [new_session_id(ts) for ts in sorted(starts_ns)]
    assert all(len(i) == 24 and int(i, 16) >= 0 for i in ids)
    assert [i[:12] for i in ids] == sorted(i[:12] for i in ids)
    assert len(set(ids)) == len(ids)
