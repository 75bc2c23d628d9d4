"""Weekly cohort retention (DESIGN §5).

A user's cohort is the ISO week (Monday, UTC) of their first event ever. Cohorts whose
Monday falls in the window are reported; ``weeks[k]`` is the share of the cohort active
on some day of week k after the cohort's Monday, for every week up to the one holding
the window's last day (a partial last week counts the days before ``until`` only).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from typing import Any

from uptake_aggregator.metrics.activity import UserActivity
from uptake_aggregator.metrics.context import ReportContext
from uptake_aggregator.window import WEEK_BITS, day_date, monday_of

__all__ = ["monday_of", "retention_rows"]


def retention_rows(ctx: ReportContext, activity: dict[str, UserActivity]) -> list[dict[str, Any]]:
    """The report's ``retention`` list, oldest cohort first, over the population.

    ``activity`` is what ``user_activity`` returned: when the window's weeks fit its
    packed week counts, they answer without a query.
    """
    window = ctx.window
    cohorts: dict[int, list[str]] = {}
    for user in ctx.population_users():
        monday = monday_of(ctx.known[user].first_day)
        if window.start <= monday < window.end:
            cohorts.setdefault(monday, []).append(user)
    if not cohorts:
        return []
    last_day = window.end - 1
    if window.weeks_packable:
        active = _active_from_weeks(window.first_monday, cohorts, activity)
    else:
        active = _active_by_query(ctx.conn, window.end, last_day, cohorts)
    rows = []
    for monday in sorted(cohorts):
        size = len(cohorts[monday])
        year, week, _ = day_date(monday).isocalendar()
        rows.append(
            {
                "cohort": f"{year}-W{week:02d}",
                "size": size,
                "weeks": [
                    active.get((monday, k), 0) / size for k in range((last_day - monday) // 7 + 1)
                ],
            }
        )
    return rows


def _active_from_weeks(
    first_monday: int, cohorts: dict[int, list[str]], activity: dict[str, UserActivity]
) -> dict[tuple[int, int], int]:
    """Active users per (cohort Monday, week offset), from the packed week counts.

    A cohort user's activity starts in its cohort week, which is in the window, so the
    window's weeks hold all of it.
    """
    active: Counter[tuple[int, int]] = Counter()
    week_mask = (1 << WEEK_BITS) - 1
    for monday, users in cohorts.items():
        shift = (monday - first_monday) // 7 * WEEK_BITS
        for user in users:
            found = activity.get(user)
            if found is None:
                continue
            packed, week = found.week_days >> shift, 0
            while packed:
                if packed & week_mask:
                    active[(monday, week)] += 1
                packed >>= WEEK_BITS
                week += 1
    return active


def _active_by_query(
    conn: sqlite3.Connection, end: int, last_day: int, cohorts: dict[int, list[str]]
) -> dict[tuple[int, int], int]:
    """Active users per (cohort Monday, week offset), read from ``user_day``."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS cohort (user TEXT PRIMARY KEY, monday INTEGER)")
    conn.execute("DELETE FROM temp.cohort")
    conn.executemany(
        "INSERT INTO temp.cohort VALUES (?, ?)",
        [(user, monday) for monday, users in cohorts.items() for user in users],
    )
    if (last_day - min(cohorts)) // 7 < _MASK_WEEKS:
        return _active_by_mask(conn, end)
    return _active_by_rows(conn, end)


#: Weeks a per-user bit mask can hold without reaching SQLite's 64-bit sign bit.
_MASK_WEEKS = 62


def _active_by_mask(conn: sqlite3.Connection, end: int) -> dict[tuple[int, int], int]:
    """Active users per (cohort Monday, week offset), one row per cohort user.

    Each user's active weeks come back as one integer (bit k set: active in week k),
    aggregated while the cohort's primary key and the (user, day) index are read in
    order; a GROUP BY per (user, week) and another per (cohort, week) measured about
    twice as slow, both sorting in temp b-trees.
    """
    active: Counter[tuple[int, int]] = Counter()
    for monday, weeks_mask in conn.execute(
        "SELECT c.monday, sum(DISTINCT 1 << ((d.day - c.monday) / 7))"
        " FROM temp.cohort c CROSS JOIN user_day d INDEXED BY user_day_by_user"
        " ON d.user = c.user AND d.day >= c.monday AND d.day < ? GROUP BY c.user",
        (end,),
    ):
        week, mask = 0, weeks_mask
        while mask:
            if mask & 1:
                active[(monday, week)] += 1
            mask >>= 1
            week += 1
    return active


def _active_by_rows(conn: sqlite3.Connection, end: int) -> dict[tuple[int, int], int]:
    """Active users per (cohort Monday, week offset) for windows too long for a bit mask."""
    # Inner query: one row per (user, week) in index order (user, day), no sort.
    return {
        (monday, week): users
        for monday, week, users in conn.execute(
            "SELECT monday, week, count(*) FROM ("
            " SELECT c.monday AS monday, (d.day - c.monday) / 7 AS week"
            " FROM temp.cohort c CROSS JOIN user_day d INDEXED BY user_day_by_user"
            " ON d.user = c.user AND d.day >= c.monday AND d.day < ?"
            " GROUP BY d.user, week"
            ") GROUP BY monday, week",
            (end,),
        )
    }
