"""An event as a row of an ``events`` table, and back: the same in every backend.

Both stores keep an event's fields in one order (``id, ts, kind, name, user, account,
session, value, props, source``) with the props as compact JSON text, so the SQLite
store, its outbox and the central store write and read events through these two
functions and agree on what an event is.

An outbox row is an events row after its local sequence: what a host's outbox hands to
the forwarder as SQLite stores it, and what the centre COPYs, with no ``Event`` between.

Example::

    row = event_row(event)
    assert event_from_row(row) == event
    assert outbox_row(7, event) == (7, *row)
"""

from __future__ import annotations

from typing import Any, Final, TypeAlias

import msgspec

from uptake.protocol import Event

__all__ = ["OutboxRow", "event_from_row", "event_row", "outbox_row"]

_json_encode: Final = msgspec.json.Encoder().encode
# A stored prop may be null: props are kept as JSON, which has no inf/nan floats.
_decode_props: Final = msgspec.json.Decoder(dict[str, bool | int | float | str | None]).decode


#: ``(seq, id, ts, kind, name, user, account, session, value, props, source)``: a local
#: sequence, then the events row (props as compact JSON text, or None).
OutboxRow: TypeAlias = tuple[Any, ...]


def event_row(event: Event) -> tuple[Any, ...]:
    """The ``events`` row of ``event``, in field order (props as compact JSON text)."""
    return (
        event.id,
        event.ts,
        event.kind,
        event.name,
        event.user,
        event.account,
        event.session,
        event.value,
        None if event.props is None else _json_encode(event.props).decode(),
        event.source,
    )


def outbox_row(seq: int, event: Event) -> OutboxRow:
    """The outbox row of ``event`` stored with local sequence ``seq``."""
    return (seq, *event_row(event))


def event_from_row(row: tuple[Any, ...]) -> Event:
    """The ``Event`` of an ``events`` row in field order (props as JSON text or None)."""
    event_id, ts, kind, name, user, account, session, value, props, source = row
    return Event(
        id=bytes(event_id),
        ts=ts,
        kind=kind,
        name=name,
        user=user,
        account=account,
        session=session,
        value=value,
        props=None if props is None else _finite(_decode_props(props)),
        source=source,
    )


def _finite(
    props: dict[str, bool | int | float | str | None],
) -> dict[str, bool | int | float | str]:
    """Props without the nulls JSON left where a non-finite float was."""
    return {key: value for key, value in props.items() if value is not None}
