"""Sessions: explicit session ids plus 30-minute-gap implicit sessions (docs/metrics.md).

Explicit: a ``session_start`` and the ``session_end`` with the same id, read from the
``sessions`` rollup. Implicit: a user's events without a session id, split where two
consecutive ones are more than 30 minutes apart, rebuilt in SQL from ``activity_bucket``
(30-minute buckets: a bucket starts a session when the previous non-empty bucket of that
user ended more than 30 minutes before it began). A session-less event from 30 minutes
before an explicit session's start to 30 minutes after its end (same user) belongs to that
session: it is left out of the implicit ones. Such a margin drops the buckets
inside it whole; a bucket it cuts in two is read event by event from ``loose_events``.
A session belongs to the window of its start and keeps its whole duration, even when it
ends after ``until``.
"""

from __future__ import annotations

import sqlite3
from bisect import bisect_left, bisect_right
from collections.abc import Container
from itertools import accumulate, compress, repeat
from operator import ne, sub
from typing import NamedTuple

import msgspec

from uptake_aggregator.store.reports import SessionSpans
from uptake_aggregator.store.sqlite.margins import EXPLICIT_STOP_SQL, in_margin, merge_margins
from uptake_aggregator.store.sqlite.schema import SESSION_GAP_US
from uptake_aggregator.window import Window

__all__ = [
    "SessionScope",
    "session_spans",
]

# SQLite hands numbers back as one comma-joined text; msgspec parses it as a JSON array
# 3-4x faster than ``map(int, text.split(","))`` (measured on 340k durations: 13 vs 46 ms).
_FLOATS = msgspec.json.Decoder(list[float])
_INTS = msgspec.json.Decoder(list[int])


class SessionScope(NamedTuple):
    """What the session figures read, and over whom.

    ``pop_clause`` is the SQL ``AND ...`` restricting a ``user`` column to the population
    ('' when unfiltered); ``known`` holds at least every user with an event before
    ``until`` whose session starts in the window (a session can take its user from a
    later event: such a user is not known yet and the session counts nowhere). The
    report builds it from its ``ReportContext``, or without one in a forked child that
    starts before the context is loaded (``context.known_user_ids``).
    """

    conn: sqlite3.Connection
    window: Window
    pop_clause: str
    known: Container[str]


#: Per user, their explicit sessions (starts, stops) in start order: the margins' input.
_Explicit = dict[str, tuple[list[int], list[int]]]


def session_spans(scope: SessionScope) -> tuple[SessionSpans, SessionSpans]:
    """The explicit and the implicit sessions of the population starting in the window.

    One read of the (user, start_ts, end_ts, last_ts) index gives each user's explicit
    sessions in start order, in one row per user (no sort): the window's durations, and
    the 30-minute margins that take session-less events out of the implicit sessions.
    """
    since = scope.window.start_us
    low_us = (since // SESSION_GAP_US - 1) * SESSION_GAP_US
    explicit = _explicit_by_user(scope, low_us - SESSION_GAP_US)
    return _explicit_in_window(scope, explicit), _implicit_sessions(scope, explicit, low_us)


def _explicit_by_user(scope: SessionScope, low_us: int) -> _Explicit:
    """Every explicit session with a user that ends at or after ``low_us``, per user.

    Every explicit session counts for the margins, wherever it starts (even after
    ``until``): which events a session holds is a fact of the whole history, as its
    duration is.
    """
    rows = scope.conn.execute(
        f"SELECT user, group_concat(start_ts), group_concat({EXPLICIT_STOP_SQL}) "
        "FROM sessions INDEXED BY sessions_by_user WHERE user IS NOT NULL "
        f"AND start_ts IS NOT NULL AND {EXPLICIT_STOP_SQL} >= ?{scope.pop_clause} "
        "GROUP BY user",
        (low_us,),
    )
    found: _Explicit = {}
    for user, starts_joined, stops_joined in rows:
        starts = _INTS.decode(f"[{starts_joined}]")
        stops = _INTS.decode(f"[{stops_joined}]")
        if any(map(int.__gt__, starts, starts[1:])):  # group_concat's order is not promised
            pairs = sorted(zip(starts, stops, strict=True))
            starts, stops = [p[0] for p in pairs], [p[1] for p in pairs]
        found[user] = (starts, stops)
    return found


def _explicit_in_window(scope: SessionScope, explicit: _Explicit) -> SessionSpans:
    """Explicit sessions of known users starting in the window (a slice of each user's)."""
    since, until = scope.window.start_us, scope.window.end_us
    known = scope.known
    per_user: dict[str, tuple[int, int]] = {}
    durations: list[float] = []
    for user, (starts, stops) in explicit.items():
        if user not in known:  # its sessions take their user from an event after until
            continue
        first, end = bisect_left(starts, since), bisect_left(starts, until)
        if first < end:
            spans = list(map(float, map(sub, stops[first:end], starts[first:end])))
            per_user[user] = (len(spans), int(sum(spans)))
            durations += spans
    return per_user, durations


def _implicit_sessions(scope: SessionScope, explicit: _Explicit, low_us: int) -> SessionSpans:
    """Per user (count, total µs), and all durations, of implicit sessions in the window.

    Walks each user's 30-minute buckets in order: a bucket starts a session when the
    previous one ended more than 30 minutes before it began. Buckets from one before
    ``since`` decide correctly whether an event at or after ``since`` starts a session
    (anything earlier is more than 30 minutes before it); buckets after ``until`` are
    read so a session's end is found wherever it falls. The margins of the user's explicit
    sessions take out the events they hold first (``_outside_margins``).
    """
    since, until = scope.window.start_us, scope.window.end_us
    # One row per user (buckets joined by SQLite in key order, no sort): fetching a row
    # per bucket would hand the GIL back and forth with the report's other thread.
    rows = scope.conn.execute(
        "SELECT user, group_concat(first_ts), group_concat(last_ts) FROM activity_bucket "
        f"WHERE bucket >= ?{scope.pop_clause} GROUP BY user",
        (low_us // SESSION_GAP_US,),
    )
    per_user: dict[str, tuple[int, int]] = {}
    durations: list[float] = []
    for user, firsts_joined, lasts_joined in rows:
        firsts = _INTS.decode(f"[{firsts_joined}]")
        lasts = _INTS.decode(f"[{lasts_joined}]")
        sessions = explicit.get(user)
        found = None
        if sessions is None:
            found = _split_buckets(firsts, lasts, since, until, durations)
        if found is None:  # has margins, or group_concat's order is not promised
            if any(map(int.__gt__, firsts, firsts[1:])):
                pairs = sorted(zip(firsts, lasts, strict=True))
                firsts, lasts = [p[0] for p in pairs], [p[1] for p in pairs]
            if sessions is not None:
                firsts, lasts = _outside_margins(scope.conn, user, firsts, lasts, sessions)
            found = _split_buckets(firsts, lasts, since, until, durations) if firsts else None
        if found is not None and found[0]:
            per_user[user] = found
    return per_user, durations


def _outside_margins(
    conn: sqlite3.Connection,
    user: str,
    firsts: list[int],
    lasts: list[int],
    sessions: tuple[list[int], list[int]],
) -> tuple[list[int], list[int]]:
    """One user's buckets (in time order) without the events their sessions' margins hold.

    A bucket no margin touches stays (two binary searches: over the starts, and over the
    running maximum of the stops, which is the stops themselves unless sessions overlap);
    a bucket inside the margins goes; a bucket a margin's edge cuts is read from
    ``loose_events`` and keeps the span of its events outside them (one span at most: a
    margin spans at least an hour, a bucket half an hour).
    """
    gap = SESSION_GAP_US
    starts, stops = sessions
    reach = stops if not any(map(int.__gt__, stops, stops[1:])) else list(accumulate(stops, max))
    # Sessions [low, high) are the only ones whose margins can reach a bucket; both binary
    # searches run over every bucket at C level, so only the buckets a margin reaches
    # take a Python step (measured: the per-bucket loop was ~40% of a 10M-event report's
    # session figures).
    highs = list(map(bisect_right, repeat(starts), map(gap.__add__, lasts)))
    lows = list(map(bisect_left, repeat(reach), map((-gap).__add__, firsts), repeat(0), highs))
    touched = list(compress(range(len(firsts)), map(ne, lows, highs)))
    if not touched:
        return firsts, lasts
    kept_firsts: list[int] = []
    kept_lasts: list[int] = []
    untouched_from = 0
    for index in touched:
        kept_firsts += firsts[untouched_from:index]
        kept_lasts += lasts[untouched_from:index]
        untouched_from = index + 1
        first, last, low, high = firsts[index], lasts[index], lows[index], highs[index]
        margins = merge_margins(zip(starts[low:high], stops[low:high], strict=True))
        if any(lo <= first and last <= hi for lo, hi in zip(*margins, strict=True)):
            continue
        bucket = first // gap
        stamps = [
            ts
            for (ts,) in conn.execute(
                "SELECT ts FROM loose_events WHERE user = ? AND ts >= ? AND ts < ? ORDER BY ts",
                (user, bucket * gap, (bucket + 1) * gap),
            )
            if not in_margin(ts, margins)
        ]
        if stamps:
            kept_firsts.append(stamps[0])
            kept_lasts.append(stamps[-1])
    kept_firsts += firsts[untouched_from:]
    kept_lasts += lasts[untouched_from:]
    return kept_firsts, kept_lasts


def _split_buckets(
    firsts: list[int], lasts: list[int], since: int, until: int, durations: list[float]
) -> tuple[int, int] | None:
    """One user's implicit sessions from buckets in time order: (count, total µs).

    Appends the durations of sessions starting in ``[since, until)`` to ``durations``.
    Returns None, appending nothing, when ``firsts`` is out of order (checked on the way:
    cheaper than sorting a copy to compare).
    """
    gap = SESSION_GAP_US
    found: list[int] = []
    start = end = previous = firsts[0]
    for first, last in zip(firsts, lasts, strict=True):
        if first < previous:
            return None
        previous = first
        if first - end > gap:
            if since <= start < until:
                found.append(end - start)
            start = first
        end = last
    if since <= start < until:
        found.append(end - start)
    durations.extend(map(float, found))
    return len(found), sum(found)
