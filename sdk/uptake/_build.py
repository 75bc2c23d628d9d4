"""Turn buffered calls into validated, encoded events (runs in the worker thread only).

The hot path stores plain tuples so that ``track()`` stays at about a hundred nanoseconds;
everything that costs more happens here, once per batch:

* ``(ts_ns, "feature", name, props, identity)`` from ``track()``;
* ``(ts_ns, kind, name, props, identity, value)`` from ``login()``, ``set_seats()``, ...;
* an ``Event`` from ``record()``, kept as given except that an empty ``id`` gets a fresh one.

Each item becomes an ``Event`` with a time-ordered id (one ``os.urandom`` call per batch),
is checked against the DESIGN §2 limits and encoded once. Invalid items are rejected and
counted by reason, never raised: the host app called ``track()`` long ago.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Final

import msgspec

from uptake._ids import new_event_ids
from uptake._model import MAX_EVENT_BYTES, MAX_NAME_LENGTH, MAX_PROPS, Event
from uptake._stats import Counters

__all__ = ["Built", "build_events", "encoder"]

encoder: Final = msgspec.msgpack.Encoder()
_event_decoder: Final = msgspec.msgpack.Decoder(Event)
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
#: The daemon refuses events more than a day ahead of its clock; reject them here already.
MAX_FUTURE_US: Final = 86_400_000_000


class Built:
    """Events of one batch that passed validation, as Structs and as msgpack bytes."""

    __slots__ = ("events", "raw")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.raw: list[bytes] = []

    def __len__(self) -> int:
        return len(self.raw)


def _name_ok(value: object) -> bool:
    return value is None or (type(value) is str and len(value) <= MAX_NAME_LENGTH)


def _props_problem(props: dict[Any, Any]) -> str | None:
    if len(props) > MAX_PROPS:
        return "too_many_props"
    for key, value in props.items():
        if not isinstance(key, str) or len(key) > MAX_NAME_LENGTH:
            return "props"
        if isinstance(value, int):
            if not _INT64_MIN <= value <= _INT64_MAX:
                return "props"
        elif not isinstance(value, (str, float)):
            return "props"
    return None


def _from_tuple(
    item: tuple[Any, ...],
    event_id: bytes,
    source: str | None,
    counters: Counters,
    identities: dict[int, bool],
) -> Event | None:
    if len(item) == 5:
        ts_ns, kind, name, props, identity = item
        value = None
    else:
        ts_ns, kind, name, props, identity, value = item
    if kind == "feature":
        if not (type(name) is str and 0 < len(name) <= MAX_NAME_LENGTH):
            counters.reject(
                "feature_name", f"feature name {name!r:.60} is not a str of 1-200 chars"
            )
            return None
    elif not _name_ok(name):
        counters.reject("feature_name", f"name {name!r:.60} is not a str of at most 200 chars")
        return None
    user, account, session = identity
    # Most events of a batch share a few identity tuples: check each tuple once.
    valid = identities.get(id(identity))
    if valid is None:
        valid = identities[id(identity)] = (
            _name_ok(user) and _name_ok(account) and _name_ok(session)
        )
    if not valid:
        counters.reject(
            "identity", f"user/account/session {identity!r:.80} must be str of <= 200 chars"
        )
        return None
    if value is not None and not (type(value) is int and _INT64_MIN <= value <= _INT64_MAX):
        counters.reject("value", f"seat count {value!r:.40} is not a 64-bit int")
        return None
    if props:
        problem = _props_problem(props)
        if problem is not None:
            counters.reject(
                problem, f"props {props!r:.80}: at most 32 str keys, str/int/float/bool values"
            )
            return None
    else:
        props = None
    return Event(event_id, ts_ns // 1000, kind, name, user, account, session, value, props, source)


def build_events(
    items: Sequence[tuple[Any, ...] | Event], source: str | None, counters: Counters
) -> Built:
    """Validate and encode ``items``; count and skip the invalid ones."""
    needs_id = [
        item.ts if isinstance(item, Event) else item[0] // 1000
        for item in items
        if not isinstance(item, Event) or not item.id
    ]
    fresh_ids = iter(new_event_ids(needs_id)) if needs_id else iter(())
    built = Built()
    latest_ts = time.time_ns() // 1000 + MAX_FUTURE_US
    identities: dict[int, bool] = {}
    for item in items:
        event: Event | None
        if isinstance(item, Event):
            event = item
            if isinstance(event.ts, int) and event.ts > latest_ts:
                if not event.id:
                    next(fresh_ids)  # keep the fresh ids aligned with their items
                counters.reject("future_ts", f"record() ts {event.ts} is over a day ahead")
                continue
            if not event.id:
                event = msgspec.structs.replace(event, id=next(fresh_ids))
            try:
                raw = encoder.encode(event)
                # Decoding enforces every schema rule (id length, kind, limits, types).
                _event_decoder.decode(raw)
            except (TypeError, ValueError, OverflowError, msgspec.MsgspecError) as exc:
                counters.reject("invalid_event", f"record() got an invalid Event: {exc}")
                continue
        else:
            event = _from_tuple(item, next(fresh_ids), source, counters, identities)
            if event is None:
                continue
            try:
                raw = encoder.encode(event)
            except (TypeError, ValueError, OverflowError) as exc:
                counters.reject("props", f"cannot encode: {exc}")
                continue
        if len(raw) > MAX_EVENT_BYTES:
            counters.reject("oversize", f"encoded event of {len(raw)} bytes exceeds 8 KiB")
            continue
        built.events.append(event)
        built.raw.append(raw)
    return built
