"""The worker's batch builder: the fast path accepts and rejects exactly what the reference does.

``build_events`` validates a whole batch in one loop, bounds each event's encoded size
instead of encoding it alone, and encodes the batch with one msgspec call;
``build_events_reference`` checks, encodes and measures one event at a time. Fed the same
items (valid or not, big props near the 8 KiB limit, shared and odd identities, records),
both must keep the same events and reject the same number for each reason.
"""

from __future__ import annotations

import enum
import time
import uuid
from collections import OrderedDict
from decimal import Decimal
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import events as valid_events
from uptake._build import (
    Built,
    _all_props_small,
    _props_bound,
    _props_bound_general,
    build_events,
    build_events_reference,
    pack_array,
    split_array,
)
from uptake._ids import event_id_time_us
from uptake._model import EVENT_KINDS, MAX_EVENT_BYTES, Event
from uptake._stats import Counters


class _Str(str):
    """A str subclass whose len() lies: the size bound must not trust it."""

    def __len__(self) -> int:
        return 1


class _Int(int):
    """An int subclass: msgspec encodes it as an int, the bound must not assume so."""


_NOW_NS = time.time_ns()
_decode_events = msgspec.msgpack.Decoder(list[Event]).decode

_big = st.builds(
    lambda char, count: char * count,
    st.sampled_from(["y", "é", "€", "😀"]),
    st.integers(min_value=0, max_value=2600),
)
_odd_names = st.sampled_from(["", "x" * 200, "é" * 200, "x" * 201, "\ud800", _Str("s" * 300)])
_good_names = st.text(min_size=1, max_size=12)
# Mostly valid, so that batches keep events and reach the props and size checks.
_bad_names = st.one_of(_odd_names, st.integers(), st.just(b"b"))


def _mostly(
    good: st.SearchStrategy[Any], *others: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    """``good`` four times out of five (one_of would weigh every branch alike)."""
    return st.integers(0, 4 * len(others) - 1).flatmap(
        lambda pick: good if pick >= len(others) else others[pick]
    )


names = _mostly(_good_names, st.none(), _bad_names)
prop_values = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(),
    st.text(max_size=20),
    _big,
    st.just(_Str("x" * 3000)),
    st.just("\udc80"),
    st.just(_Int(5)),
    st.just([1]),
    st.none(),
)
prop_keys = st.one_of(st.text(max_size=8), st.sampled_from(["k" * 200, "€" * 200, "k" * 201]))
props = st.one_of(
    st.just({}),
    st.dictionaries(prop_keys, prop_values, max_size=4),
    st.dictionaries(st.text(min_size=1, max_size=3), _big, max_size=6),
    st.dictionaries(st.text(min_size=1, max_size=3), _big, min_size=3, max_size=5),
    st.dictionaries(st.integers(), st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=6), st.integers(0, 9), min_size=30, max_size=34),
)
_identity_parts = _mostly(_good_names, st.none(), _bad_names)
identities = st.tuples(_identity_parts, _identity_parts, _identity_parts)
values = st.one_of(st.none(), st.integers(min_value=-(2**64), max_value=2**64), st.just("7"))


@st.composite
def items(draw: st.DrawFn) -> list[Any]:
    """A batch as the hot path buffers it, sharing a few identity tuples between items."""
    pool = draw(st.lists(identities, min_size=1, max_size=3))
    result: list[Any] = []
    for _ in range(draw(st.integers(min_value=0, max_value=12))):
        ts = _NOW_NS + draw(st.integers(min_value=0, max_value=10**9))
        identity = draw(st.sampled_from(pool))
        shape = draw(st.sampled_from(["track", "track", "call", "record"]))
        if shape == "track":
            result.append((ts, "feature", draw(names), draw(props), identity))
        elif shape == "call":
            kind = draw(st.sampled_from(sorted(EVENT_KINDS)))
            result.append((ts, kind, draw(names), draw(props), identity, draw(values)))
        else:
            event = draw(valid_events())
            event = msgspec.structs.replace(
                event,
                ts=draw(st.sampled_from([event.ts % (_NOW_NS // 1000)] * 4 + [2**62])),
                id=draw(st.sampled_from([event.id, b""])),
                name=draw(st.sampled_from([event.name] * 4 + ["n" * 201])),
            )
            result.append((event,) if draw(st.booleans()) else event)
    return result


def _built_both_ways(batch: list[Any], source: str | None) -> tuple[Built, Built]:
    """The batch built by the fast path and by the reference, which reject the same calls."""
    fast_counters, reference_counters = Counters(), Counters()
    fast = build_events(batch, source, fast_counters)
    reference = build_events_reference(batch, source, reference_counters)
    assert fast_counters.rejected == reference_counters.rejected
    return fast, reference


def _without_fresh_ids(built: Built) -> list[Event]:
    return [msgspec.structs.replace(event, id=b"") for event in built.events]


@settings(max_examples=300)
@given(items(), st.sampled_from([None, "billing", "s" * 200, "é" * 1200, _Str("app")]))
def test_fast_path_keeps_and_rejects_exactly_what_the_reference_does(
    batch: list[Any], source: str | None
) -> None:
    fast, reference = _built_both_ways(batch, source)
    assert _without_fresh_ids(fast) == _without_fresh_ids(reference)
    assert len(fast) == len(reference) == len(fast.raw)
    assert fast.raw == [msgspec.msgpack.encode(event) for event in fast.events]
    assert all(len(raw) <= MAX_EVENT_BYTES for raw in fast.raw)
    assert all(len(event.id) == 16 for event in fast.events)


_any_keys = st.one_of(
    prop_keys,
    st.just(_Str("k")),
    st.just(_Str("k" * 201)),
    st.integers(),
    st.just(b"k"),
    st.booleans(),
    st.none(),
)
_any_values = st.recursive(
    st.one_of(prop_values, st.sampled_from([True, False, 0, 1, 2**63 - 1, -(2**63), 2**63])),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=300)
@given(
    st.one_of(
        st.dictionaries(_any_keys, _any_values, max_size=6),
        st.dictionaries(st.text(max_size=3), _any_values, min_size=30, max_size=34),
        st.dictionaries(st.sampled_from(["k" * 100, "j" * 100, "i" * 101]), _big, max_size=3),
    )
)
def test_props_bound_fast_path_equals_the_general_walk(props: dict[Any, Any]) -> None:
    """The type-identity loop gives the general walk's bound or refusal for any props."""
    assert _props_bound(props) == _props_bound_general(props)


def test_payload_is_the_batch_array_and_splits_back() -> None:
    identity = ("u1", "acme", "s1")
    batch: list[Any] = [
        (
            _NOW_NS + index,
            "feature",
            f"feature_{index}",
            {"n": index} if index % 3 else {},
            identity,
        )
        for index in range(40)
    ]
    built = build_events(batch, "billing", Counters())
    assert _decode_events(built.payload) == built.events
    assert split_array(built.payload) == [msgspec.msgpack.encode(e) for e in built.events]
    assert pack_array(built.raw) == built.payload
    assert [event_id_time_us(event.id) for event in built.events] == [
        (_NOW_NS + index) // 1000 for index in range(40)
    ]


def test_props_just_under_and_over_the_limit() -> None:
    """The bound lets small events through unmeasured; big props are measured exactly."""
    identity = ("u1", "acme", None)
    counters = Counters()
    base = len(
        msgspec.msgpack.encode(
            Event(
                b"\0" * 16, _NOW_NS // 1000, "feature", "f", "u1", "acme", props={"k": "y" * 1000}
            )
        )
    )
    fits = "y" * (1000 + MAX_EVENT_BYTES - base)  # same str16 header as the 1000 y
    built = build_events(
        [
            (_NOW_NS, "feature", "f", {"k": fits}, identity),
            (_NOW_NS, "feature", "f", {"k": fits + "y"}, identity),
        ],
        None,
        counters,
    )
    assert [len(raw) for raw in built.raw] == [MAX_EVENT_BYTES]
    assert counters.rejected == {"oversize": 1}


class _Level(enum.IntEnum):
    HIGH = 3


# Props at and just past the batch check's tighter limits (8 props, keys of 40 and str
# values of 80 characters), and values only an exact-type check tells apart.
_small_keys = st.one_of(st.text(max_size=6), st.sampled_from(["k" * 40, "€" * 40]))
_small_values = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.text(max_size=10),
    st.sampled_from(["v" * 80, "é" * 80, "\udc80"]),
)
_odd_values = st.sampled_from(
    [
        *("v" * 81, 2**63, -(2**63) - 1, 2**64),
        *(_Str("x"), _Str("x" * 300), _Int(4), _Level.HIGH, Decimal("1.5"), uuid.UUID(int=7)),
        None,
    ]
)
_small_props = st.one_of(
    st.none(),
    st.dictionaries(_small_keys, _small_values, max_size=9),
    st.dictionaries(_small_keys, _small_values, min_size=8, max_size=8),
)


@st.composite
def _small_batches(draw: st.DrawFn) -> list[Any]:
    """Valid calls with small props, now and then one odd prop, key or props mapping."""
    identity = ("u1", "acme", draw(st.sampled_from([None, "s1"])))
    batch: list[Any] = []
    for index in range(draw(st.integers(min_value=1, max_value=10))):
        props = draw(_small_props)
        twist = draw(st.integers(0, 39))
        if twist == 0:
            props = {"odd": draw(_odd_values)}
        elif twist == 1:
            props = draw(st.sampled_from([{_Str("k" * 300): 1}, {"k" * 41: 1}, {1: 1}]))
        elif twist == 2:
            props = draw(st.sampled_from([OrderedDict(plan="pro"), dict.fromkeys("abcdefghi", 1)]))
        ts = _NOW_NS + index
        if draw(st.booleans()):
            batch.append((ts, "feature", "export", props, identity))
        else:
            batch.append((ts, "seats", None, props, identity, draw(st.integers(0, 9))))
    return batch


def _masked(built: Built) -> list[bytes]:
    """Each encoded event with its id's random half (bytes 14-21 of the event) zeroed."""
    return [raw[:14] + bytes(8) + raw[22:] for raw in built.raw]


@settings(max_examples=150)
@given(_small_batches(), st.sampled_from([None, "billing", "s" * 200]))
def test_batch_props_check_keeps_and_rejects_exactly_what_the_reference_does(
    batch: list[Any], source: str | None
) -> None:
    """The whole-batch props check (marshal + msgspec.convert) changes no outcome."""
    fast, reference = _built_both_ways(batch, source)
    assert _masked(fast) == _masked(reference)
    assert fast.payload == pack_array(fast.raw)


def test_batch_props_check_takes_plain_props_and_leaves_the_rest() -> None:
    identity = ("u1", "acme", None)

    def batch(props: dict[Any, Any] | None) -> list[Any]:
        return [
            (_NOW_NS, "feature", "f", {"plan": "pro"}, identity),
            (_NOW_NS, "feature", "f", props, identity),
        ]

    assert _all_props_small(batch({"n": 2**63 - 1, "on": True, "x": 1.5, "k" * 40: "v" * 80}))
    assert _all_props_small(batch(None))
    for odd in (
        {"n": 2**63},
        {"k" * 41: 1},
        {"v": "v" * 81},
        {str(index): index for index in range(9)},
        {"v": _Str("x")},
        {_Str("k"): 1},
        {"v": _Level.HIGH},
        {"v": Decimal(1)},
        {"v": uuid.UUID(int=1)},
        {"v": None},
        {"v": [1]},
        {1: 1},
        OrderedDict(v=1),
    ):
        assert not _all_props_small(batch(odd)), odd
