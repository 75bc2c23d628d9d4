"""Hypothesis strategies for small usage datasets with every awkward case in reach.

Users u1..u4 in accounts a1..a3 (users move between accounts), seat counts changing
over time, explicit sessions with and without ends, bursts of session-less events with
gaps right around 30 minutes, events exactly on midnight and on window boundaries,
then duplicates, shuffled arrival and random batch splits.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import msgspec
from hypothesis import strategies as st

from uptake.protocol import Event, ReportFilters, content_event_id

__all__ = ["BASE_DAY", "DAY", "GAP", "Dataset", "datasets"]

DAY = 86_400_000_000
GAP = 30 * 60 * 1_000_000
#: 2026-03-02, a Monday, so ISO weeks line up with the day offsets.
BASE_DATE = dt.date(2026, 3, 2)
BASE_DAY = (BASE_DATE - dt.date(1970, 1, 1)).days
SPAN_DAYS = 24

USERS = ["u1", "u2", "u3", "u4"]
ACCOUNTS = ["a1", "a2", "a3"]
FEATURES = ["export", "search", "share"]
KINDS = ["login", "logout", "feature", "identify", "session_start", "session_end"]

times_of_day = st.sampled_from([0, 1, DAY - 1, DAY - GAP // 2, GAP, 12 * 3600 * 10**6]) | (
    st.integers(0, DAY - 1)
)
gaps = st.sampled_from([0, 1, GAP - 1, GAP, GAP + 1, 60 * 10**6, 2 * 3600 * 10**6])


@st.composite
def timestamps(draw: st.DrawFn) -> int:
    day = draw(st.integers(0, SPAN_DAYS - 1))
    return (BASE_DAY + day) * DAY + draw(times_of_day)


def _event(ts: int, kind: str, **fields: object) -> Event:
    return Event(id=bytes(16), ts=ts, kind=kind, **fields)  # type: ignore[arg-type]


@st.composite
def single_events(draw: st.DrawFn) -> list[Event]:
    kind = draw(st.sampled_from(KINDS))
    props = draw(
        st.none() | st.fixed_dictionaries({"integration": st.sampled_from(["slack", "jira"])})
    )
    return [
        _event(
            draw(timestamps()),
            kind,
            name=draw(st.sampled_from(FEATURES)) if kind == "feature" else None,
            user=draw(st.none() | st.sampled_from(USERS)),
            account=draw(st.none() | st.sampled_from(ACCOUNTS)),
            session=draw(st.none() | st.sampled_from(["s1", "s2"])),
            props=props,
        )
    ]


@st.composite
def bursts(draw: st.DrawFn) -> list[Event]:
    """Session-less events of one user, gaps just under, at and over 30 minutes."""
    user = draw(st.sampled_from(USERS))
    account = draw(st.none() | st.sampled_from(ACCOUNTS))
    ts = draw(timestamps())
    burst = []
    for step in draw(st.lists(gaps, min_size=0, max_size=5)):
        kind = draw(st.sampled_from(["feature", "login", "identify"]))
        burst.append(
            _event(
                ts,
                kind,
                name=draw(st.sampled_from(FEATURES)) if kind == "feature" else None,
                user=user,
                account=account,
            )
        )
        ts += step
    burst.append(_event(ts, "feature", name=draw(st.sampled_from(FEATURES)), user=user))
    return burst


@st.composite
def explicit_sessions(draw: st.DrawFn) -> list[Event]:
    """session_start, some events carrying the id, and maybe a session_end."""
    session = f"x{draw(st.integers(0, 5))}"
    user = draw(st.sampled_from(USERS))
    start = draw(timestamps())
    found = [_event(start, "session_start", user=draw(st.none() | st.just(user)), session=session)]
    ts = start
    for step in draw(st.lists(gaps, max_size=3)):
        ts += step
        found.append(
            _event(ts, "feature", name=draw(st.sampled_from(FEATURES)), user=user, session=session)
        )
    if draw(st.booleans()):
        ts += draw(gaps)
        found.append(_event(ts, "session_end", user=user, session=session, value=ts - start))
    return found


#: Offsets of session-less events from an explicit session's start or end: inside, on and
#: just past its 30-minute margin, and far away.
margins = st.sampled_from([0, 1, GAP - 1, GAP, GAP + 1, 10 * 60 * 10**6, 3 * GAP])


@st.composite
def visits(draw: st.DrawFn) -> list[Event]:
    """``login(); with session(): ...; logout()``: session-less events around a session."""
    found = draw(explicit_sessions())
    user = next((e.user for e in found if e.user is not None), None)
    if user is None:  # a lone session_start naming no one: nothing to visit
        return found
    start = found[0].ts
    end = max(e.ts for e in found)
    for _ in range(draw(st.integers(1, 3))):
        before = draw(st.booleans())
        kind = draw(st.sampled_from(["login", "logout", "feature"]))
        offset = draw(margins)
        found.append(
            _event(
                start - offset if before else end + offset,
                kind,
                name=draw(st.sampled_from(FEATURES)) if kind == "feature" else None,
                user=user,
            )
        )
    return found


@st.composite
def seat_changes(draw: st.DrawFn) -> list[Event]:
    return [
        _event(
            draw(timestamps()),
            "seats",
            account=draw(st.sampled_from(ACCOUNTS)),
            value=draw(st.integers(0, 4)),
        )
    ]


@st.composite
def releases(draw: st.DrawFn) -> list[Event]:
    return [_event(draw(timestamps()), "release", name=f"1.{draw(st.integers(0, 9))}")]


def _rarely(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
    """None three times in four: filters narrow some reports, not most."""
    return st.tuples(st.integers(0, 3), strategy).map(
        lambda pair: pair[1] if pair[0] == 0 else None
    )


@st.composite
def filters(draw: st.DrawFn) -> ReportFilters:
    def date(offset: int) -> str:
        return (BASE_DATE + dt.timedelta(days=offset)).isoformat()

    since_offset = draw(st.integers(-3, SPAN_DAYS - 8))
    length = draw(st.integers(1, 30))
    return ReportFilters(
        since=draw(st.none() | st.just(date(since_offset))),
        until=draw(st.none() | st.just(date(since_offset + length))),
        account=draw(_rarely(st.sampled_from(ACCOUNTS[:2]))),
        user=draw(_rarely(st.sampled_from(USERS[:2]))),
        feature=draw(_rarely(st.sampled_from(FEATURES[:2]))),
        core=draw(st.none() | st.lists(st.sampled_from([*FEATURES, "unused"]), max_size=3)),
    )


@dataclass
class Dataset:
    """Unique events, and the batches that deliver them (duplicated, shuffled, split)."""

    events: list[Event]
    batches: list[list[Event]]
    filters: ReportFilters
    today: dt.date


@st.composite
def datasets(draw: st.DrawFn) -> Dataset:
    groups = draw(
        st.lists(
            st.one_of(
                single_events(),
                bursts(),
                explicit_sessions(),
                visits(),
                seat_changes(),
                releases(),
            ),
            min_size=1,
            max_size=25,
        )
    )
    # Ids are assigned last, from the position: unique, and the same on every replay
    # (os.urandom ids would make hypothesis's shrinking and replays flaky).
    events = [
        msgspec.structs.replace(event, id=content_event_id(event.ts, str(index).encode()))
        for index, event in enumerate(event for group in groups for event in group)
    ]
    resent = events + draw(st.lists(st.sampled_from(events), max_size=5) if events else st.just([]))
    arrival = draw(st.permutations(resent))
    size = draw(st.integers(1, 10))
    batches = [list(arrival[i : i + size]) for i in range(0, len(arrival), size)]
    today = BASE_DATE + dt.timedelta(days=draw(st.integers(SPAN_DAYS - 6, SPAN_DAYS + 2)))
    return Dataset(events, batches, draw(filters()), today)
