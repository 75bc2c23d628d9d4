"""The event model shared by the SDK, the daemon and the CLI (docs/protocol.md §4, §9)."""

from __future__ import annotations

from typing import Annotated, Final, Literal, Union

import msgspec

__all__ = [
    "EVENT_KINDS",
    "MAX_EVENT_BYTES",
    "MAX_NAME_LENGTH",
    "MAX_PROPS",
    "Event",
    "EventKind",
    "PropValue",
]

#: Longest name, user, account, session or source id, in characters.
MAX_NAME_LENGTH: Final = 200
#: Most props an event may carry.
MAX_PROPS: Final = 32
#: Largest msgpack-encoded event, in bytes.
MAX_EVENT_BYTES: Final = 8 * 1024

EventKind = Literal[
    "login",
    "logout",
    "session_start",
    "session_end",
    "feature",
    "identify",
    "seats",
    "release",
]
EVENT_KINDS: Final[frozenset[str]] = frozenset(EventKind.__args__)  # type: ignore[attr-defined]

# bool is listed first so msgspec keeps True/False as bools rather than ints.
PropValue = Union[bool, int, float, str]

_Id = Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
_Name = Annotated[str, msgspec.Meta(max_length=MAX_NAME_LENGTH)]
_Props = Annotated[dict[_Name, PropValue], msgspec.Meta(max_length=MAX_PROPS)]


# gc=False: an Event holds only bytes, ints, strs and a dict of scalars, so it can never
# be part of a reference cycle; untracked, the thousands an SDK batch (or a daemon round)
# holds neither trigger young collections nor get walked by them (SDK: 1372 -> 78 young
# collections per 200k events, about 0.12 us/event less; wire format unchanged).
class Event(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True, gc=False):
    """One usage event.

    ``id`` is a 16-byte, time-ordered (UUIDv7 layout) id assigned once and kept across
    retries, so the daemon can drop duplicates. ``ts`` is microseconds since the Unix
    epoch, UTC. Decoding with msgspec enforces the §2 limits on lengths and prop count;
    the 8 KiB encoded-size limit is checked where events are encoded.

    Example::

        Event(id=new_event_id(ts), ts=ts, kind="feature", name="export_csv", user="u1")
    """

    id: _Id
    ts: Annotated[int, msgspec.Meta(ge=0)]
    kind: EventKind
    name: _Name | None = None
    user: _Name | None = None
    account: _Name | None = None
    session: _Name | None = None
    value: int | None = None
    props: _Props | None = None
    source: _Name | None = None
