"""Hypothesis strategies for events, shared by the SDK, aggregator and CLI tests."""

from __future__ import annotations

from hypothesis import strategies as st

from uptake.protocol import EVENT_KINDS, MAX_NAME_LENGTH, MAX_PROPS, Event, new_event_id

__all__ = ["events", "names", "prop_values", "props"]

names = st.text(min_size=1, max_size=MAX_NAME_LENGTH)
prop_values = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=50),
)
props = st.dictionaries(st.text(max_size=20), prop_values, max_size=MAX_PROPS)


@st.composite
def events(draw: st.DrawFn) -> Event:
    """Any valid §2 event (random kind, optional fields present or not)."""
    ts = draw(st.integers(min_value=0, max_value=4_000_000_000_000_000))
    return Event(
        id=new_event_id(ts),
        ts=ts,
        kind=draw(st.sampled_from(sorted(EVENT_KINDS))),  # type: ignore[arg-type]
        name=draw(st.none() | names),
        user=draw(st.none() | names),
        account=draw(st.none() | names),
        session=draw(st.none() | names),
        value=draw(st.none() | st.integers(min_value=-(2**63), max_value=2**63 - 1)),
        props=draw(st.none() | props),
        source=draw(st.none() | names),
    )
