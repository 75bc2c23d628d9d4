"""Weekly cohort retention (docs/metrics.md, *Retention*).

A user's cohort is the ISO week (Monday, UTC) of their first event ever. Cohorts whose
Monday falls in the window are reported; ``weeks[k]`` is the share of the cohort active
on some day of week k after the cohort's Monday, for every week up to the one holding
the window's last day (a partial last week counts the days before ``until`` only).
"""

from __future__ import annotations

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
        active = ctx.source.cohort_active_weeks(cohorts, window.end)
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
