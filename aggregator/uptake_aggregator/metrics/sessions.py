"""Sessions (DESIGN §5): explicit session ids plus 30-minute-gap implicit sessions.

Explicit: a ``session_start`` and the ``session_end`` with the same id, read from the
``sessions`` rollup. Implicit: a user's events without a session id, split where two
consecutive ones are more than 30 minutes apart, rebuilt in SQL from ``activity_bucket``
(30-minute buckets: a bucket starts a session when the previous non-empty bucket of that
user ended more than 30 minutes before it began). A session belongs to the window of its
start and keeps its whole duration, even when it ends after ``until``.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from uptake_aggregator.metrics.context import ReportContext
from uptake_aggregator.schema import SESSION_GAP_US

__all__ = ["SessionStats", "session_stats"]

_US_PER_S = 1_000_000


@dataclass
class SessionStats:
    """Sessions starting in the window: per user (count, total µs) and all durations."""

    per_user: dict[str, tuple[int, int]] = field(default_factory=dict)
    durations: list[int] = field(default_factory=list)

    def add(self, user: str, duration: int) -> None:
        """Count one session of ``duration`` µs for ``user``."""
        count, total = self.per_user.get(user, (0, 0))
        self.per_user[user] = (count + 1, total + duration)
        self.durations.append(duration)

    @property
    def count(self) -> int:
        """Number of sessions."""
        return len(self.durations)

    def mean_s(self) -> float | None:
        """Mean duration in seconds, None without sessions."""
        if not self.durations:
            return None
        return sum(self.durations) / len(self.durations) / _US_PER_S

    def median_s(self) -> float | None:
        """Median duration in seconds, None without sessions."""
        if not self.durations:
            return None
        return float(statistics.median(self.durations)) / _US_PER_S

    def user_mean_s(self, user: str) -> float | None:
        """Mean duration of one user's sessions in seconds, None without sessions."""
        count, total = self.per_user.get(user, (0, 0))
        return total / count / _US_PER_S if count else None


def _explicit(ctx: ReportContext) -> Iterable[tuple[str, int]]:
    """(user, duration µs) of explicit sessions starting in the window."""
    rows = ctx.conn.execute(
        "SELECT user, CASE WHEN end_ts IS NULL THEN last_ts - start_ts "
        "ELSE max(end_ts - start_ts, 0) END "
        "FROM sessions WHERE start_ts >= ? AND start_ts < ? AND user IS NOT NULL"
        f"{ctx.pop_clause()}",
        (ctx.window.start_us, ctx.window.end_us),
    )
    return rows


def _implicit(ctx: ReportContext) -> Iterable[tuple[str, int]]:
    """(user, duration µs) of implicit sessions starting in the window.

    Buckets from one before ``since`` decide correctly whether an event at or after
    ``since`` starts a session (anything earlier is more than 30 minutes before it);
    buckets after ``until`` are read so a session's end is found wherever it falls.
    """
    first_bucket = ctx.window.start_us // SESSION_GAP_US - 1
    rows = ctx.conn.execute(
        f"""
        WITH marked AS (
            SELECT user, bucket, first_ts, last_ts,
                   coalesce(first_ts - lag(last_ts) OVER w > :gap, 1) AS starts
            FROM activity_bucket WHERE bucket >= :first{ctx.pop_clause()}
            WINDOW w AS (PARTITION BY user ORDER BY bucket)
        ), numbered AS (
            SELECT user, first_ts, last_ts,
                   sum(starts) OVER (PARTITION BY user ORDER BY bucket) AS session
            FROM marked
        )
        SELECT user, max(last_ts) - min(first_ts) FROM numbered
        GROUP BY user, session
        HAVING min(first_ts) >= :since AND min(first_ts) < :until
        """,
        {
            "gap": SESSION_GAP_US,
            "first": first_bucket,
            "since": ctx.window.start_us,
            "until": ctx.window.end_us,
        },
    )
    return rows


def session_stats(ctx: ReportContext) -> SessionStats:
    """Explicit and implicit sessions of the population starting in the window."""
    stats = SessionStats()
    for user, duration in _explicit(ctx):
        stats.add(user, duration)
    for user, duration in _implicit(ctx):
        stats.add(user, duration)
    return stats
