"""Sessions (DESIGN §5): explicit session ids plus 30-minute-gap implicit sessions.

Explicit: a ``session_start`` and the ``session_end`` with the same id, read from the
``sessions`` rollup. Implicit: a user's events without a session id, split where two
consecutive ones are more than 30 minutes apart, rebuilt in SQL from ``activity_bucket``
(30-minute buckets: a bucket starts a session when the previous non-empty bucket of that
user ended more than 30 minutes before it began). A session belongs to the window of its
start and keeps its whole duration, even when it ends after ``until``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from uptake_aggregator.metrics.context import ReportContext
from uptake_aggregator.schema import SESSION_GAP_US

__all__ = ["SessionStats", "session_stats"]

_US_PER_S = 1_000_000


@dataclass
class SessionStats:
    """Sessions starting in the window: count, total and median duration, and per user."""

    count: int = 0
    total_us: int = 0
    median_us: float | None = None
    per_user: dict[str, tuple[int, int]] = field(default_factory=dict)

    def mean_s(self) -> float | None:
        """Mean duration in seconds, None without sessions."""
        return self.total_us / self.count / _US_PER_S if self.count else None

    def median_s(self) -> float | None:
        """Median duration in seconds, None without sessions."""
        return None if self.median_us is None else self.median_us / _US_PER_S

    def user_mean_s(self, user: str) -> float | None:
        """Mean duration of one user's sessions in seconds, None without sessions."""
        count, total = self.per_user.get(user, (0, 0))
        return total / count / _US_PER_S if count else None


_EXPLICIT = """
    SELECT user, CASE WHEN end_ts IS NULL THEN last_ts - start_ts
                      ELSE max(end_ts - start_ts, 0) END
    FROM sessions WHERE start_ts >= :since AND start_ts < :until AND user IS NOT NULL{pop}
"""

# Buckets from one before ``since`` decide correctly whether an event at or after
# ``since`` starts a session (anything earlier is more than 30 minutes before it);
# buckets after ``until`` are read so a session's end is found wherever it falls.
_IMPLICIT = """
    WITH marked AS (
        SELECT user, bucket, first_ts, last_ts,
               coalesce(first_ts - lag(last_ts) OVER w > :gap, 1) AS starts
        FROM activity_bucket WHERE bucket >= :first{pop}
        WINDOW w AS (PARTITION BY user ORDER BY bucket)
    ), numbered AS (
        SELECT user, first_ts, last_ts,
               sum(starts) OVER (PARTITION BY user ORDER BY bucket) AS session
        FROM marked
    )
    SELECT user, max(last_ts) - min(first_ts) FROM numbered
    GROUP BY user, session
    HAVING min(first_ts) >= :since AND min(first_ts) < :until
"""


def session_stats(ctx: ReportContext) -> SessionStats:
    """Explicit and implicit sessions of the population starting in the window.

    Durations go to a temp table so counting, summing and the median run in SQLite.
    """
    conn = ctx.conn
    params = {
        "gap": SESSION_GAP_US,
        "first": ctx.window.start_us // SESSION_GAP_US - 1,
        "since": ctx.window.start_us,
        "until": ctx.window.end_us,
    }
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS span (user TEXT NOT NULL, duration INTEGER)")
    conn.execute("DELETE FROM temp.span")
    for query in (_EXPLICIT, _IMPLICIT):
        conn.execute("INSERT INTO temp.span " + query.format(pop=ctx.pop_clause()), params)
    per_user = conn.execute(
        "SELECT user, count(*), sum(duration) FROM temp.span GROUP BY user"
    ).fetchall()
    # An explicit session can take its user from an event after ``until``; such a user
    # is not known yet, so the session counts nowhere (rare: drop it here).
    strangers = [(user,) for user, _, _ in per_user if user not in ctx.known]
    if strangers:
        conn.executemany("DELETE FROM temp.span WHERE user = ?", strangers)
    stats = SessionStats()
    for user, count, total in per_user:
        if user not in ctx.known:
            continue
        stats.per_user[user] = (count, total)
        stats.count += count
        stats.total_us += total
    if stats.count:
        middle = [
            duration
            for (duration,) in conn.execute(
                "SELECT duration FROM temp.span ORDER BY duration LIMIT ? OFFSET ?",
                (2 - stats.count % 2, (stats.count - 1) // 2),
            )
        ]
        stats.median_us = sum(middle) / len(middle)
    return stats
