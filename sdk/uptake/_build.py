"""Turn buffered calls into validated, encoded events (runs in the worker thread only).

The hot path stores plain tuples so that ``track()`` stays at about a hundred nanoseconds;
everything that costs more happens here, once per batch:

* ``(ts_ns, "feature", name, props, identity)`` from ``track()``;
* ``(ts_ns, kind, name, props, identity, value)`` from ``login()``, ``set_seats()``, ...;
* ``(event,)`` from ``record()`` (or a bare ``Event``), kept as given except that an empty
  ``id`` gets a fresh one.

Each item becomes an ``Event`` with a time-ordered id (all ids of a batch are made in
one go, see ``new_event_ids``), is checked against the event limits (docs/protocol.md),
and the batch's valid events are encoded by one msgspec call into the msgpack array a
``Batch`` frame carries. Invalid items are rejected and counted by reason, never raised:
the host app called ``track()`` long ago.

The 8 KiB limit on an encoded event is enforced without encoding each event on its own:
an upper bound of its size is derived from what was validated anyway (every name, user,
account and session is a ``str`` of at most 200 characters, at most 4 UTF-8 bytes each;
props are counted key by key), and only an event whose bound exceeds the limit (large
props) is encoded alone to measure it. ``build_events_reference`` is the plain
event-at-a-time version: the tests hold the fast path to exactly its results.
"""

from __future__ import annotations

import marshal
import operator
import time
from collections.abc import Sequence
from typing import Annotated, Any, Final, Union, cast

import msgspec

from uptake._ids import new_event_ids
from uptake._model import MAX_EVENT_BYTES, MAX_NAME_LENGTH, MAX_PROPS, Event
from uptake._stats import Counters

__all__ = [
    "Built",
    "EncodedEvents",
    "build_events",
    "build_events_reference",
    "encoder",
    "pack_array",
    "split_array",
]

encoder: Final = msgspec.msgpack.Encoder()
_event_decoder: Final = msgspec.msgpack.Decoder(Event)
_raw_list_decoder: Final = msgspec.msgpack.Decoder(list[msgspec.Raw])
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
#: The daemon refuses events more than a day ahead of its clock; reject them here already.
MAX_FUTURE_US: Final = 86_400_000_000

# -- size bounds (msgpack as msgspec writes an Event: a map of the non-None fields) ---------
#: Map header (10 fields: fixmap), the ten field names (fixstr: 1 + len each), ``id``
#: (bin8: 2 + 16), ``ts`` and ``value`` (at most 9 each), ``kind`` (fixstr, <= 13 chars),
#: ``props``' map header (<= 3), and name/user/account/session: str of <= 200 characters,
#: so <= 800 UTF-8 bytes behind a header of <= 3 bytes.
_FIELD_NAMES_BYTES: Final = sum(
    1 + len(field) for field in ("id", "ts", "kind", "name", "user", "account", "session")
) + sum(1 + len(field) for field in ("value", "props", "source"))
_EVENT_BOUND: Final = 1 + _FIELD_NAMES_BYTES + 18 + 9 + 9 + 14 + 3 + 4 * (3 + 4 * MAX_NAME_LENGTH)
#: Per prop: key header (<= 3: keys of <= 200 characters) and a value of at most 9 bytes
#: (int, float) or a str's header (<= 5) plus 4 bytes per character.
_PROP_BOUND: Final = 3 + 9
_UNBOUNDED: Final = MAX_EVENT_BYTES + 1  # "encode this event alone to know its size"
_TOO_MANY_PROPS: Final = -1
_BAD_PROPS: Final = -2
_FEATURE: Final = "feature"


class EncodedEvents:
    """``count`` encoded events as one msgpack array (``payload``).

    ``payload`` is exactly what a ``Batch`` frame's ``events`` field holds; ``raw`` (one
    ``bytes`` per event, for the spool and for isolating an event the daemon refuses) is
    split from it on demand.
    """

    __slots__ = ("_raw", "count", "payload")

    def __init__(self, payload: bytes, count: int, raw: list[bytes] | None = None) -> None:
        self.payload = payload
        self.count = count
        self._raw = raw

    @property
    def raw(self) -> list[bytes]:
        """The encoded events, one ``bytes`` each."""
        if self._raw is None:
            self._raw = split_array(self.payload)
        return self._raw

    def __len__(self) -> int:
        return self.count


class Built(EncodedEvents):
    """Events of one batch that passed validation: the Structs, and their msgpack array."""

    __slots__ = ("events",)

    def __init__(self, events: list[Event], payload: bytes, raw: list[bytes] | None = None) -> None:
        super().__init__(payload, len(events), raw)
        self.events = events

    @classmethod
    def from_raw(cls, events: list[Event], raw: list[bytes]) -> Built:
        """A batch of already encoded events."""
        return cls(events, pack_array(raw), raw)


def pack_array(raw: list[bytes]) -> bytes:
    """The msgpack array of already encoded values."""
    return encoder.encode([msgspec.Raw(item) for item in raw])


def split_array(payload: bytes) -> list[bytes]:
    """The encoded elements of a msgpack array (the inverse of ``pack_array``)."""
    return [bytes(item) for item in _raw_list_decoder.decode(payload)]


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


def _props_bound(props: dict[Any, Any]) -> int:
    """Upper bound of the props' encoded size, or ``_TOO_MANY_PROPS`` / ``_BAD_PROPS``.

    The same result as ``_props_bound_general`` (the tests check it), for a fraction of
    the worker's time: props are nearly always str keys with exact str/int/float/bool
    values, which one tight loop of ``type()`` identity checks recognizes. Anything else
    (a subclass, a bad type) goes to ``_props_bound_general``. Key lengths are summed
    rather than compared one by one: only a sum over 200 characters can hide a key over
    the limit.
    """
    if len(props) > MAX_PROPS:
        return _TOO_MANY_PROPS
    chars = 0
    for key, value in props.items():
        if type(key) is not str:
            return _props_bound_general(props)
        chars += len(key)
        kind = type(value)
        if kind is str:
            chars += len(value)
        elif kind is int:
            if not _INT64_MIN <= value <= _INT64_MAX:
                return _BAD_PROPS
        elif kind is not float and kind is not bool:
            return _props_bound_general(props)
    if chars > MAX_NAME_LENGTH and max(map(len, props)) > MAX_NAME_LENGTH:
        return _BAD_PROPS
    return _PROP_BOUND * len(props) + 4 * chars


def _props_bound_general(props: dict[Any, Any]) -> int:
    """``_props_bound`` for any props: validates exactly as ``_props_problem``.

    Subclasses of str/int/float (whose ``len`` or encoding may differ) make the bound
    ``_UNBOUNDED``: the event is then measured.
    """
    if len(props) > MAX_PROPS:
        return _TOO_MANY_PROPS
    bound = 0
    for key, value in props.items():
        if not isinstance(key, str) or len(key) > MAX_NAME_LENGTH:
            return _BAD_PROPS
        if isinstance(value, int):
            if not _INT64_MIN <= value <= _INT64_MAX:
                return _BAD_PROPS
        elif isinstance(value, str):
            if type(value) is str:
                bound += 4 * len(value)
            else:
                bound = _UNBOUNDED
        elif not isinstance(value, float):
            return _BAD_PROPS
        if type(key) is str and type(value) in (str, int, float, bool):
            bound += _PROP_BOUND + 4 * len(key)
        else:
            bound = _UNBOUNDED
    return bound


# -- the batch check of props ------------------------------------------------------------
# Checking props event by event (``_props_bound``) is about half the worker's time: a
# Python loop over every key and value. Nearly every batch's props are small and plain,
# which two C passes over the whole batch prove at once: ``marshal`` accepts only exact
# built-in types (no subclass, whose len() may lie, no Decimal or UUID that msgspec would
# write as a str) and ``msgspec.convert`` checks keys, values, ranges and counts against
# a type tighter than the limits, tight enough that the props' encoded size is bounded
# too. A batch that fails either is checked event by event, as before.
_SMALL_PROPS: Final = 8
_SMALL_KEY: Final = 40
_SMALL_STR: Final = 80
_SmallProps = Annotated[
    dict[
        Annotated[str, msgspec.Meta(max_length=_SMALL_KEY)],
        Union[
            bool,
            Annotated[int, msgspec.Meta(ge=_INT64_MIN, le=_INT64_MAX)],
            float,
            Annotated[str, msgspec.Meta(max_length=_SMALL_STR)],
        ],
    ],
    msgspec.Meta(max_length=_SMALL_PROPS),
]


class _SmallPropsBatch(msgspec.Struct):
    """The target of the batch check. A Struct, not ``list[_SmallProps]``: msgspec looks
    a Struct's type info up by the class, a typing alias by hashing it (~10 µs a call)."""

    props: list[_SmallProps]


#: The most props that pass ``_SmallProps`` can add to an event (as ``_props_bound``).
_SMALL_PROPS_BOUND: Final = _SMALL_PROPS * (_PROP_BOUND + 4 * (_SMALL_KEY + _SMALL_STR))
_props_of: Final = operator.itemgetter(3)
#: Below this many calls the two C calls' fixed cost (~2 µs) exceeds what they save.
_BATCH_CHECK_FROM: Final = 16


def _all_props_small(rows: Sequence[tuple[Any, ...]]) -> bool:
    """True if every call's props (if any) are valid and within ``_SmallProps``."""
    try:
        propses = list(filter(None, map(_props_of, rows)))
    except IndexError:  # a record() event: no props to check here
        return False
    if not propses:
        return True
    try:
        # convert first: it stops at the first props it refuses (a long str, usually),
        # so a batch with such props now and then pays little for the attempt.
        msgspec.convert({"props": propses}, _SmallPropsBatch)
        marshal.dumps(propses)
    except (ValueError, msgspec.ValidationError):  # marshal: "unmarshallable object"
        return False
    return True


def _source_bound(source: str | None) -> int:
    if source is None:
        return 0
    if type(source) is str:
        return 5 + 4 * len(source)
    return _UNBOUNDED


def _reject_props(counters: Counters, problem: str, props: dict[Any, Any]) -> None:
    counters.reject(problem, f"props {props!r:.80}: at most 32 str keys, str/int/float/bool values")


def _from_record(item: Event, event_id: bytes, latest_ts: int, counters: Counters) -> Event | None:
    """Check an ``Event`` given to ``record()``; return it (with an id) or None."""
    event = item
    if isinstance(event.ts, int) and event.ts > latest_ts:
        counters.reject("future_ts", f"record() ts {event.ts} is over a day ahead")
        return None
    if not event.id:
        event = msgspec.structs.replace(event, id=event_id)
    try:
        raw = encoder.encode(event)
        # Decoding enforces every schema rule (id length, kind, limits, types).
        _event_decoder.decode(raw)
    except (TypeError, ValueError, OverflowError, msgspec.MsgspecError) as exc:
        counters.reject("invalid_event", f"record() got an invalid Event: {exc}")
        return None
    if len(raw) > MAX_EVENT_BYTES:
        counters.reject("oversize", f"encoded event of {len(raw)} bytes exceeds 8 KiB")
        return None
    return event


def _id_stamp(item: Any, latest_ts: int) -> int:
    """The time (µs) a fresh id for ``item`` encodes."""
    if type(item) is tuple:
        if len(item) == 1:
            item = item[0]
        else:
            return int(item[0] // 1000)
    ts = getattr(item, "ts", 0)
    # A record() event with a bad ts is rejected anyway; its unused id needs some time.
    return ts if type(ts) is int and 0 <= ts <= latest_ts else 0


def build_events(
    items: Sequence[tuple[Any, ...] | Event], source: str | None, counters: Counters
) -> Built:
    """Validate and encode ``items``; count and skip the invalid ones."""
    base_bound = _EVENT_BOUND + _source_bound(source)
    if base_bound > MAX_EVENT_BYTES:
        # A source name of over a thousand characters: no event is small by the bound.
        return build_events_reference(items, source, counters)
    latest_ts = time.time_ns() // 1000 + MAX_FUTURE_US
    rows: Sequence[tuple[Any, ...]]
    try:
        stamps = [item[0] // 1000 for item in items]  # type: ignore[index]
        rows = cast("Sequence[tuple[Any, ...]]", items)  # all tuples: item[0] worked
    except TypeError:  # a bare Event, or the (event,) of record()
        stamps = [_id_stamp(item, latest_ts) for item in items]
        rows = [item if type(item) is tuple else (item,) for item in items]
    ids = new_event_ids(stamps)
    small_props = (
        len(rows) >= _BATCH_CHECK_FROM
        and base_bound + _SMALL_PROPS_BOUND <= MAX_EVENT_BYTES
        and _all_props_small(rows)
    )
    events: list[Event] = []
    append = events.append
    last_identity: Any = None
    identity_ok = False
    user = account = session = None
    for item, ts_us, event_id in zip(rows, stamps, ids, strict=True):
        # One branch per item shape; the checks and their order are those of
        # build_events_reference (the tests compare both).
        size = len(item)
        if size == 5:
            _, kind, name, props, identity = item
            value = None
        elif size == 6:
            _, kind, name, props, identity, value = item
        else:
            record = item[0]
            if not isinstance(record, Event):
                counters.reject("invalid_event", f"not an Event: {record!r:.60}")
                continue
            event = _from_record(record, event_id, latest_ts, counters)
            if event is not None:
                append(event)
            continue
        if kind == _FEATURE:
            if not (type(name) is str and 0 < len(name) <= MAX_NAME_LENGTH):
                counters.reject(
                    "feature_name", f"feature name {name!r:.60} is not a str of 1-200 chars"
                )
                continue
        elif name is not None and not (type(name) is str and len(name) <= MAX_NAME_LENGTH):
            counters.reject("feature_name", f"name {name!r:.60} is not a str of at most 200 chars")
            continue
        if identity is not last_identity:
            # Consecutive calls of one request share one identity tuple: check it once.
            user, account, session = identity
            identity_ok = (
                (user is None or (type(user) is str and len(user) <= MAX_NAME_LENGTH))
                and (account is None or (type(account) is str and len(account) <= MAX_NAME_LENGTH))
                and (session is None or (type(session) is str and len(session) <= MAX_NAME_LENGTH))
            )  # _name_ok of each, inline: checked twice a session (start and end tuples)
            last_identity = identity
        if not identity_ok:
            counters.reject(
                "identity", f"user/account/session {identity!r:.80} must be str of <= 200 chars"
            )
            continue
        if value is not None and not (type(value) is int and _INT64_MIN <= value <= _INT64_MAX):
            counters.reject("value", f"seat count {value!r:.40} is not a 64-bit int")
            continue
        if props:
            if small_props:
                # Valid and under the limit by the batch check (_all_props_small).
                append(
                    Event(event_id, ts_us, kind, name, user, account, session, value, props, source)
                )
                continue
            bound = _props_bound(props)
            if bound < 0:
                _reject_props(
                    counters, "too_many_props" if bound == _TOO_MANY_PROPS else "props", props
                )
                continue
            event = Event(event_id, ts_us, kind, name, user, account, session, value, props, source)
            if base_bound + bound > MAX_EVENT_BYTES and _encode_checked(event, counters) is None:
                continue
            append(event)
        else:
            # Without props an event is under the limit by the bound (checked above).
            append(Event(event_id, ts_us, kind, name, user, account, session, value, None, source))
    try:
        return Built(events, encoder.encode(events))
    except (TypeError, ValueError, OverflowError):
        # Something the checks let through does not encode (e.g. a lone surrogate in a
        # name): find it event by event.
        return _encode_each(events, counters)


def _encode_each(events: list[Event], counters: Counters) -> Built:
    kept: list[Event] = []
    raw: list[bytes] = []
    for event in events:
        encoded = _encode_checked(event, counters)
        if encoded is not None:
            kept.append(event)
            raw.append(encoded)
    return Built.from_raw(kept, raw)


def _encode_checked(event: Event, counters: Counters) -> bytes | None:
    """The event encoded on its own; None (counted) when it cannot be or is over 8 KiB."""
    try:
        encoded = encoder.encode(event)
    except (TypeError, ValueError, OverflowError) as exc:
        counters.reject("props", f"cannot encode: {exc}")
        return None
    if len(encoded) > MAX_EVENT_BYTES:
        counters.reject("oversize", f"encoded event of {len(encoded)} bytes exceeds 8 KiB")
        return None
    return encoded


# -- the reference: one event at a time (the tests check build_events against it) ----------


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
            _reject_props(counters, problem, props)
            return None
    else:
        props = None
    return Event(event_id, ts_ns // 1000, kind, name, user, account, session, value, props, source)


def build_events_reference(
    items: Sequence[tuple[Any, ...] | Event], source: str | None, counters: Counters
) -> Built:
    """``build_events`` one event at a time, each encoded and measured on its own.

    The straightforward version of the rules, kept as the tests' oracle for the fast path.
    """
    latest_ts = time.time_ns() // 1000 + MAX_FUTURE_US
    ids = new_event_ids([_id_stamp(item, latest_ts) for item in items])
    events: list[Event] = []
    raw: list[bytes] = []
    identities: dict[int, bool] = {}
    for item, event_id in zip(items, ids, strict=True):
        if type(item) is not tuple or len(item) == 1:
            record = item[0] if type(item) is tuple else item
            if not isinstance(record, Event):
                counters.reject("invalid_event", f"not an Event: {record!r:.60}")
                continue
            event = _from_record(record, event_id, latest_ts, counters)
            if event is None:
                continue
            encoded = encoder.encode(event)
        else:
            tupled = _from_tuple(item, event_id, source, counters, identities)
            if tupled is None:
                continue
            event = tupled
            checked = _encode_checked(event, counters)
            if checked is None:
                continue
            encoded = checked
        events.append(event)
        raw.append(encoded)
    return Built.from_raw(events, raw)
