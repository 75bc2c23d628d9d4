"""Engagement analytics (docs/metrics.md, *Engagement*): lifecycle, power users, feature
frequency and quadrants, release impact, activation, and each account's weekly trend.

Everything here is read through ``ReportSource`` methods in domain terms (active days per
user, daily active users, distinct (user, day) uses of a feature, first times), so a
backend answers from its rollups. Ratios that are compared (the engagement matrix's
medians) are exact fractions, so "at least the median" holds on equality exactly.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final

from uptake_aggregator.metrics.context import ReportContext
from uptake_aggregator.store.reports import UserActivity
from uptake_aggregator.units import DAY_US
from uptake_aggregator.window import (
    MAX_PACKED_WEEKS,
    WEEK_BITS,
    Window,
    day_date,
    day_number,
    monday_of,
)

__all__ = [
    "WeeklyActivity",
    "activation",
    "add_feature_frequency",
    "add_release_impact",
    "add_weekly_active",
    "lifecycle_rows",
    "power_users",
    "weekly_activity",
]

#: Days after a release (the release day included) its impact looks at, at most.
RELEASE_SPAN_DAYS: Final = 7
#: Time to first value that still counts as activated, and the length of ``by_day``.
ACTIVATION_DAYS: Final = 14
_WEEK_MASK: Final = (1 << WEEK_BITS) - 1


def _iso_week(monday: int) -> str:
    year, week, _ = day_date(monday).isocalendar()
    return f"{year}-W{week:02d}"


@dataclass
class WeeklyActivity:
    """Every user's active weeks around the window, as bit masks.

    Bit 0 is the week before the lifecycle's first week (``first_monday`` - 7 days),
    bit j (j >= 1) is lifecycle week j - 1; ``weeks`` is the number of lifecycle weeks:
    the ISO weeks from the one holding ``since`` to the one holding ``until`` - 1 day.
    Activity counts only before ``until``. Every user (not just the population).
    """

    first_monday: int
    weeks: int
    masks: dict[str, int]


def _unpack(packed: int, first_bit: int, cache: dict[tuple[int, int], int]) -> int:
    """A ``UserActivity.week_days`` value as one bit per active week, from ``first_bit``."""
    key = (packed, first_bit)
    found = cache.get(key)
    if found is None:
        found, bit, rest = 0, first_bit, packed
        while rest:
            if rest & _WEEK_MASK:
                found |= 1 << bit
            rest >>= WEEK_BITS
            bit += 1
        cache[key] = found
    return found


def weekly_activity(ctx: ReportContext, activity: dict[str, UserActivity]) -> WeeklyActivity:
    """Read each user's active weeks for the lifecycle and the account trends.

    ``activity`` (what ``user_activity`` returned for the window) holds the window's weeks
    when they fit its packed counts; the days of the first week before ``since`` and the
    week before it are two small range reads. Longer windows read ``user_activity`` in
    chunks of whole weeks that fit.
    """
    window = ctx.window
    source = ctx.source
    first = window.first_monday
    weeks = (window.end - 1 - first) // 7 + 1
    masks: dict[str, int] = {}
    cache: dict[tuple[int, int], int] = {}
    if window.weeks_packable:
        for user, found in activity.items():
            if found.week_days:
                masks[user] = _unpack(found.week_days, 1, cache)
        if window.start > first:
            for user in source.users_active_between(first, window.start):
                masks[user] = masks.get(user, 0) | 0b10
    else:
        step = 7 * MAX_PACKED_WEEKS
        for start in range(first, window.end, step):
            chunk = Window(start, min(start + step, window.end))
            first_bit = 1 + (start - first) // 7
            for user, found in source.user_activity(chunk, most_history=False).items():
                if found.week_days:
                    masks[user] = masks.get(user, 0) | _unpack(found.week_days, first_bit, cache)
    for user in source.users_active_between(first - 7, first):
        masks[user] = masks.get(user, 0) | 1
    return WeeklyActivity(first, weeks, masks)


def lifecycle_rows(ctx: ReportContext, weekly: WeeklyActivity) -> list[dict[str, Any]]:
    """The report's ``lifecycle`` list over the population, every week, oldest first."""
    origin = weekly.first_monday - 7  # the day bit 0 starts
    patterns: Counter[tuple[int, int]] = Counter()  # (mask, bit of the first week): users
    known = ctx.known
    for user, mask in weekly.masks.items():
        info = known.get(user)
        if info is None or not ctx.in_population(user):
            continue
        patterns[(mask, (monday_of(info.first_day) - origin) // 7)] += 1
    rows = []
    for week in range(weekly.weeks):
        bit = week + 1
        new = returning = resurrecting = dormant = 0
        for (mask, first_bit), users in patterns.items():
            now, before = mask >> bit & 1, mask >> (bit - 1) & 1
            if now:
                if first_bit == bit:
                    new += users
                elif before:
                    returning += users
                else:
                    resurrecting += users
            elif before:
                dormant += users
        rows.append(
            {
                "week": _iso_week(weekly.first_monday + 7 * week),
                "new": new,
                "returning": returning,
                "resurrecting": resurrecting,
                "dormant": dormant,
                "pulse": (new + resurrecting) / dormant if dormant else None,
            }
        )
    return rows


def add_weekly_active(
    ctx: ReportContext, rows: list[dict[str, Any]], weekly: WeeklyActivity
) -> None:
    """Give each ``accounts`` row its ``weekly_active``: its users active per lifecycle week.

    An account's users are the known users whose account is that one as of ``until``
    (all of them, as every account figure: a filter picks rows, it does not shrink them).
    """
    if not rows:
        return
    listed = {row["account"] for row in rows}
    patterns: Counter[tuple[str, int]] = Counter()
    known = ctx.known
    for user, mask in weekly.masks.items():
        info = known.get(user)
        account = info.account if info is not None else None
        if account is not None and account in listed:
            patterns[(account, mask)] += 1
    trends = {account: [0] * weekly.weeks for account in listed}
    for (account, mask), users in patterns.items():
        trend = trends[account]
        for week in range(weekly.weeks):
            if mask >> (week + 1) & 1:
                trend[week] += users
    for row in rows:
        row["weekly_active"] = trends[row["account"]]


def _day_counts(ctx: ReportContext, days: int, activity: dict[str, UserActivity]) -> list[int]:
    """Population users by their active days over the ``days`` days ending at ``until``."""
    window = ctx.window
    counts = [0] * days
    if Window(window.end - days, window.end) == window:  # the window's activity has them
        for user, days_active in activity.items():
            if ctx.in_population(user):
                counts[days_active.active_days - 1] += 1
        return counts
    for active_days, users in ctx.source.active_day_counts(window.end - days, window.end).items():
        counts[active_days - 1] = users
    return counts


def power_users(ctx: ReportContext, activity: dict[str, UserActivity]) -> dict[str, list[int]]:
    """The ``power_users`` curves: ``l7[k-1]`` / ``l30[k-1]`` users active on exactly k days."""
    return {"l7": _day_counts(ctx, 7, activity), "l30": _day_counts(ctx, 30, activity)}


def _median(values: Sequence[Fraction]) -> Fraction:
    """The median, the mean of the two middle values for an even count (exact)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def add_feature_frequency(
    ctx: ReportContext, rows: list[dict[str, Any]], active_users: int
) -> None:
    """Give each ``features`` row its ``days_per_user`` and ``quadrant`` (engagement matrix).

    ``rows`` are every feature of the window (before a ``--feature`` filter narrows
    them): the medians are over all of them. ``days_per_user`` is None for a feature no
    user of the population used (only user-less events), and its ``quadrant`` None, as
    every quadrant is when there are no active users (adoption None); the medians are
    over the features with both figures.
    """
    user_days = ctx.source.feature_user_days(ctx.window.start, ctx.window.end)
    exact: dict[str, tuple[Fraction, Fraction]] = {}
    for row in rows:
        users = row["users"]
        days = user_days.get(row["name"], 0)
        row["days_per_user"] = days / users if users else None
        if users and active_users:
            exact[row["name"]] = (Fraction(users, active_users), Fraction(days, users))
    if exact:
        adoption_median = _median([adoption for adoption, _ in exact.values()])
        days_median = _median([days for _, days in exact.values()])
    for row in rows:
        found = exact.get(row["name"])
        if found is None:
            row["quadrant"] = None
            continue
        wide, often = found[0] >= adoption_median, found[1] >= days_median
        row["quadrant"] = (
            "core" if wide and often else "power" if often else "one_off" if wide else "improve"
        )


def _features_used(ctx: ReportContext, span: Window) -> Iterable[str]:
    """Features with an event in ``span``, as ``features`` would list them."""
    if ctx.population is None:
        return {name for name, _, _ in ctx.source.feature_totals(span)}
    return ctx.source.population_feature_events(span).keys()


def add_release_impact(ctx: ReportContext, rows: list[dict[str, Any]]) -> None:
    """Give each ``releases`` row its impact: DAU and feature use before and after it.

    The after span runs from the release day to min(release day + 7, ``until``) (at
    least the release day); the before span is as many days, ending the day before.
    Both may lie before ``since``. Figures are over the population; a ``--feature``
    filter narrows the features listed.
    """
    wanted = ctx.filters.feature
    spans: dict[int, dict[str, Any]] = {}  # release day: its figures (releases share days)
    for row in rows:
        day = day_number(dt.date.fromisoformat(row["day"]))
        impact = spans.get(day)
        if impact is None:
            impact = spans[day] = _impact(ctx, day, wanted)
        row.update(impact)


def _impact(ctx: ReportContext, day: int, wanted: str | None) -> dict[str, Any]:
    source = ctx.source
    after_days = max(min(day + RELEASE_SPAN_DAYS, ctx.window.end) - day, 1)
    before = Window(day - after_days, day)
    after = Window(day, day + after_days)
    daily = source.daily_active_users(before.start, after.end)
    names = set(_features_used(ctx, before)) | set(_features_used(ctx, after))
    if wanted is not None:
        names &= {wanted}
    used_before = source.feature_user_days(before.start, before.end)
    used_after = source.feature_user_days(after.start, after.end)
    features = []
    for name in names:
        users_before = used_before.get(name, 0) / after_days
        users_after = used_after.get(name, 0) / after_days
        features.append(
            {
                "name": name,
                "users_before": users_before,
                "users_after": users_after,
                "change": users_after / users_before - 1 if users_before else None,
            }
        )
    features.sort(key=lambda f: (f["change"] is None, f["change"] or 0.0, f["name"]))
    return {
        "after_days": after_days,
        "before": {
            "since": day_date(before.start).isoformat(),
            "until": day_date(before.end).isoformat(),
        },
        "dau_before": sum(daily.get(d, 0) for d in range(before.start, before.end)) / after_days,
        "dau_after": sum(daily.get(d, 0) for d in range(after.start, after.end)) / after_days,
        "features": features,
    }


def activation(ctx: ReportContext, core: Sequence[str] | None) -> dict[str, Any] | None:
    """The ``activation`` figures for the ``core`` features (None without any).

    New users: the population's users whose first event is in the window. Time to first
    value: their first ``feature`` event naming a core feature (before ``until``) minus
    their first event. ``by_day[k-1]``: among new users whose first event is at least k
    days before ``until``, the share with a time to first value of at most k days.
    """
    names = sorted(set(core or ()))
    if not names:
        return None
    window = ctx.window
    newcomers = [
        user
        for user, info in ctx.known.items()
        if window.start <= info.first_day < window.end and ctx.in_population(user)
    ]
    firsts = ctx.source.first_values(newcomers, names, window.end)
    end_us = window.end_us
    limit = ACTIVATION_DAYS * DAY_US
    activated: list[int] = []
    # A user counts for by_day[k-1] when observable (first event at least k days before
    # until: k <= seen // DAY) and reached by then (ttv <= k days: k >= ceil(ttv / DAY)):
    # two difference arrays over k instead of a pass over the users per k.
    eligible = [0] * (ACTIVATION_DAYS + 2)
    reached = [0] * (ACTIVATION_DAYS + 2)
    for first, value in firsts.values():
        last_k = min((end_us - first) // DAY_US, ACTIVATION_DAYS)
        if last_k >= 1:
            eligible[1] += 1
            eligible[last_k + 1] -= 1
        if value is None:
            continue
        ttv = value - first
        if ttv <= limit:
            activated.append(ttv)
        first_k = max(-(-ttv // DAY_US), 1)
        if first_k <= last_k:
            reached[first_k] += 1
            reached[last_k + 1] -= 1
    by_day: list[float | None] = []
    observable = reaching = 0
    for k in range(1, ACTIVATION_DAYS + 1):
        observable += eligible[k]
        reaching += reached[k]
        by_day.append(reaching / observable if observable else None)
    new_users = len(firsts)
    return {
        "core": names,
        "new_users": new_users,
        "activated": len(activated),
        "rate": len(activated) / new_users if new_users else None,
        "median_ttv_s": statistics.median(activated) / 1e6 if activated else None,
        "by_day": by_day,
    }
