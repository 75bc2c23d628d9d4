"""The 30-minute margins of explicit sessions, shared by the sessions metric and the prune.

A session-less event from 30 minutes before an explicit session's start to 30 minutes
after its end (same user) belongs to that session and starts no implicit one
(docs/metrics.md, *Sessions*). A user's margins are merged into disjoint spans in time
order, so "is this event held by a session?" is one binary search.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from typing import Final

from uptake_aggregator.store.sqlite.schema import SESSION_GAP_US

__all__ = ["EXPLICIT_STOP_SQL", "Margins", "in_margin", "merge_margins"]

#: The end of an explicit session as SQL over a ``sessions`` row (start_ts not null): its
#: latest ``session_end`` (never before the start), else its latest event carrying the id.
EXPLICIT_STOP_SQL: Final = "max(coalesce(end_ts, last_ts), start_ts)"

#: One user's merged margins: (lows, highs), disjoint, in time order, both ends inclusive.
Margins = tuple[list[int], list[int]]


def merge_margins(sessions: Iterable[tuple[int, int]]) -> Margins:
    """The margins of explicit sessions given as (start, stop) µs, in any order.

    >>> merge_margins([(100 * 60_000_000, 110 * 60_000_000)])
    ([4200000000], [8400000000])
    """
    lows: list[int] = []
    highs: list[int] = []
    for start, stop in sorted(sessions):
        low, high = start - SESSION_GAP_US, stop + SESSION_GAP_US
        if highs and low <= highs[-1]:  # overlaps the margin before: one span
            highs[-1] = max(highs[-1], high)
        else:
            lows.append(low)
            highs.append(high)
    return lows, highs


def in_margin(ts: int, margins: Margins) -> bool:
    """True when a session-less event at ``ts`` lies in one of ``margins``.

    >>> in_margin(5, ([0, 20], [10, 30])), in_margin(15, ([0, 20], [10, 30]))
    (True, False)
    """
    at = bisect_right(margins[0], ts) - 1
    return at >= 0 and ts <= margins[1][at]
