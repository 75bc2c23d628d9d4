"""Generate tests/cli/sample_report.json: a realistic usage report for renderer tests.

The renderers were built before the metrics engine existed, so they are tested against this
fixture: 60 days, 6 accounts, 30 users, 10 features, a release, and nulls wherever §6
allows them (unknown seats, no previous window, users without sessions). The numbers come
from a small seeded simulation so they hang together (DAU <= active users, segments match
active days, ...). Re-run after changing it::

    .venv/bin/python tests/cli/make_sample_report.py
"""

from __future__ import annotations

import json
import random
import statistics
from datetime import date, timedelta
from pathlib import Path
from typing import Any

SAMPLE_PATH = Path(__file__).with_name("sample_report.json")

_SINCE = date(2026, 9, 1)
_DAYS = 60
_ACCOUNTS: dict[str, int | None] = {
    "acme": 8,
    "globex": 7,
    "initech": 6,  # churning: busy in the previous window, quiet now
    "umbrella": 4,  # at its seat limit: upsell
    "Fox & Hound <EU>": None,  # seats never set; a name that needs HTML escaping
    "hooli": 5,
}
_FEATURES = [
    "dashboard",
    "export_csv",
    "search",
    "share_link",
    "api_keys",
    "alerts",
    "sso_setup",
    "bulk_edit",
    "comments",
    "slack_integration",
]
_RELEASE_DAY = 35


def _simulate() -> dict[str, Any]:
    rng = random.Random(20261123)
    users: list[tuple[str, str, float]] = []
    per_account = [7, 6, 4, 4, 5, 4]
    for (account, _), count in zip(_ACCOUNTS.items(), per_account, strict=True):
        for _ in range(count):
            uid = f"u{len(users) + 1:02d}"
            if account == "initech":
                activity = 0.02 if len(users) % 2 else 0.0
            elif account == "umbrella":
                activity = rng.choice([0.6, 0.8, 0.97])
            else:
                activity = rng.choice([0.0, 0.1, 0.35, 0.55, 0.85])
            users.append((uid, account, activity))
    days = [_SINCE + timedelta(days=i) for i in range(_DAYS)]
    active: dict[str, set[int]] = {uid: set() for uid, _, _ in users}
    for uid, _, activity in users:
        for index, day in enumerate(days):
            # Weekend dips, except for the few who use the product every day.
            weekend = day.weekday() >= 5 and activity < 0.9
            if rng.random() < activity * (0.3 if weekend else 1.0):
                active[uid].add(index)
    return {"users": users, "days": days, "active": active, "rng": rng}


def _segment(active_days: int, days: int) -> str:
    share = active_days / days
    if share >= 0.8:
        return "daily"
    if share >= 0.4:
        return "frequent"
    if share > 0:
        return "occasional"
    return "inactive"


def build_sample() -> dict[str, Any]:
    """Return the sample report as a plain dict in §6 field order."""
    sim = _simulate()
    rng: random.Random = sim["rng"]
    users: list[tuple[str, str, float]] = sim["users"]
    days: list[date] = sim["days"]
    active: dict[str, set[int]] = sim["active"]
    until = _SINCE + timedelta(days=_DAYS)

    dau = [
        {"day": day.isoformat(), "users": sum(1 for uid in active if index in active[uid])}
        for index, day in enumerate(days)
    ]
    window_active = [uid for uid, days_on in active.items() if days_on]
    wau = sum(1 for uid in window_active if max(active[uid]) >= _DAYS - 7)
    mau = sum(1 for uid in window_active if max(active[uid]) >= _DAYS - 30)

    user_rows: list[dict[str, Any]] = []
    all_sessions: list[float] = []
    feature_users: dict[str, set[str]] = {name: set() for name in _FEATURES}
    feature_events: dict[str, int] = dict.fromkeys(_FEATURES, 0)
    account_features: dict[str, set[str]] = {name: set() for name in _ACCOUNTS}
    total_logins = 0
    for uid, account, activity in users:
        active_days = len(active[uid])
        logins = active_days + rng.randint(0, active_days // 3) if active_days else 0
        sessions = logins + rng.randint(0, 2) if logins else 0
        lengths = [rng.uniform(120, 3600) for _ in range(sessions)]
        all_sessions += lengths
        total_logins += logins
        used = [f for f in _FEATURES if active_days and rng.random() < activity + 0.15]
        if _RELEASE_DAY and "bulk_edit" in used and rng.random() < 0.6:
            used.remove("bulk_edit")  # the release made bulk_edit less popular
        for feature in used:
            feature_users[feature].add(uid)
            feature_events[feature] += rng.randint(1, 6) * max(active_days, 1)
            account_features[account].add(feature)
        if active[uid]:
            last = days[max(active[uid])]
        else:
            last = _SINCE - timedelta(days=rng.randint(3, 40))
        last_seen = f"{last.isoformat()}T{rng.randint(8, 18):02d}:{rng.randint(0, 59):02d}:00Z"
        user_rows.append(
            {
                "user": uid,
                "account": account,
                "active_days": active_days,
                "logins": logins,
                "sessions": sessions,
                "avg_session_s": round(statistics.fmean(lengths), 1) if lengths else None,
                "features": len(used),
                "segment": _segment(active_days, _DAYS),
                "last_seen": last_seen,
            }
        )

    active_count = len(window_active)
    features = [
        {
            "name": name,
            "events": feature_events[name],
            "users": len(feature_users[name]),
            "accounts": len({a for uid, a, _ in users if uid in feature_users[name]}),
            "adoption": round(len(feature_users[name]) / active_count, 4),
        }
        for name in _FEATURES
        if feature_users[name]
    ]
    features.sort(key=lambda row: (-row["users"], row["name"]))

    accounts: list[dict[str, Any]] = []
    for account, seats in _ACCOUNTS.items():
        members = [uid for uid, a, _ in users if a == account]
        account_active = sum(1 for uid in members if active[uid])
        previous = {"initech": 4, "umbrella": 3, "acme": 5, "globex": 5, "hooli": 0}.get(account, 2)
        utilization = round(account_active / seats, 4) if seats else None
        daily_logins = [sum(1 for uid in members if i in active[uid]) for i in range(_DAYS)]
        adoption_rate = round(statistics.fmean(daily_logins) / seats, 4) if seats else None
        growth = round(account_active / previous, 4) if previous else None
        breadth = len(account_features[account])
        health = round(
            40 * min(utilization or 0.0, 1.0)
            + 25 * min(adoption_rate or 0.0, 1.0) * 2
            + 20 * min(growth if growth is not None else 1.0, 1.0)
            + 15 * breadth / len(_FEATURES)
        )
        health = max(0, min(100, health))
        band = "green" if health >= 70 else "yellow" if health >= 40 else "red"
        flags = []
        if previous and account_active <= 0.7 * previous:
            flags.append("churn_risk")
        if utilization is not None and utilization >= 0.9:
            flags.append("upsell")
        if seats is not None and account_active < seats:
            flags.append("idle_seats")
        accounts.append(
            {
                "account": account,
                "seats": seats,
                "active_users": account_active,
                "utilization": utilization,
                "adoption_rate": adoption_rate,
                "growth": growth,
                "integrations": {"acme": 2, "globex": 1, "umbrella": 1}.get(account, 0),
                "breadth": breadth,
                "health": health,
                "band": band,
                "flags": flags,
            }
        )

    retention = []
    first_monday = _SINCE - timedelta(days=_SINCE.weekday())
    week = first_monday + timedelta(days=7)
    cohort_index = 0
    while week < until:
        size = [5, 4, 3, 3, 2, 2, 1, 2][cohort_index % 8]
        weeks_after = (until - timedelta(days=1) - week).days // 7 + 1
        shares = [1.0]
        for k in range(1, weeks_after):
            kept = max(0, round(size * (0.85**k) * rng.uniform(0.6, 1.0)))
            shares.append(round(kept / size, 4))
        iso_year, iso_week, _ = week.isocalendar()
        retention.append({"cohort": f"{iso_year}-W{iso_week:02d}", "size": size, "weeks": shares})
        week += timedelta(days=7)
        cohort_index += 1

    # Engagement (docs/metrics.md): from the same simulated active days.
    first_monday_index = -_SINCE.weekday()  # day index of the first lifecycle Monday
    mondays = list(range(first_monday_index, _DAYS, 7))

    def active_in(uid: str, lo: int) -> bool:
        return any(lo <= d < lo + 7 for d in active[uid])

    first_index = {uid: min(days_on) for uid, days_on in active.items() if days_on}
    lifecycle = []
    for lo in mondays:
        now = {uid for uid in active if active_in(uid, lo)}
        before = {uid for uid in active if active_in(uid, lo - 7)}
        new = {uid for uid in now if lo <= first_index[uid] < lo + 7 and lo > 0}
        dormant = len(before - now)
        resurrecting = len(now - before - new)
        iso_year, iso_week, _ = (_SINCE + timedelta(days=lo)).isocalendar()
        lifecycle.append(
            {
                "week": f"{iso_year}-W{iso_week:02d}",
                "new": len(new),
                "returning": len((now & before) - new),
                "resurrecting": resurrecting,
                "dormant": dormant,
                "pulse": round((len(new) + resurrecting) / dormant, 4) if dormant else None,
            }
        )
    for row in accounts:
        members = [uid for uid, a, _ in users if a == row["account"]]
        row["weekly_active"] = [sum(1 for uid in members if active_in(uid, lo)) for lo in mondays]

    def curve(n: int) -> list[int]:
        counts = [0] * n
        for days_on in active.values():
            k = sum(1 for d in days_on if d >= _DAYS - n)
            if k:
                counts[k - 1] += 1
        return counts

    adoption_median = statistics.median(f["adoption"] for f in features)
    for f in features:
        f["days_per_user"] = round(rng.uniform(1.0, 12.0), 4)
    days_median = statistics.median(f["days_per_user"] for f in features)
    for f in features:
        wide, often = f["adoption"] >= adoption_median, f["days_per_user"] >= days_median
        f["quadrant"] = (
            "core" if wide and often else "power" if often else "one_off" if wide else "improve"
        )
    release_index = _RELEASE_DAY
    moved = []
    for f in features:
        before_users = round(rng.uniform(0.0, 6.0), 4)
        after_users = round(before_users * rng.uniform(0.3, 2.0), 4)
        if f["name"] == "bulk_edit":
            after_users = round(before_users * 0.35, 4)
        if f["name"] == "share_link":
            before_users, after_users = 0.0, 2.4286
        change = round(after_users / before_users - 1, 4) if before_users else None
        moved.append(
            {
                "name": f["name"],
                "users_before": before_users,
                "users_after": after_users,
                "change": change,
            }
        )
    moved.sort(key=lambda m: (m["change"] is None, m["change"] or 0.0, m["name"]))
    dau_before = statistics.fmean(row["users"] for row in dau[release_index - 7 : release_index])
    dau_after = statistics.fmean(row["users"] for row in dau[release_index : release_index + 7])
    activation = {
        "core": ["export_csv", "share_link"],
        "new_users": 9,
        "activated": 6,
        "rate": round(6 / 9, 4),
        "median_ttv_s": 93_600.0,
        "by_day": [
            *(0.2222, 0.3333, 0.4444, 0.5, 0.5, 0.5714, 0.5714),
            *(0.6667, 0.6667, 0.6667, 0.75, 0.75, 0.75, None),
        ],
    }

    mean_dau = statistics.fmean(row["users"] for row in dau)
    return {
        "window": {"since": _SINCE.isoformat(), "until": until.isoformat()},
        "product": {
            "dau": dau,
            "wau": wau,
            "mau": mau,
            "stickiness": round(mean_dau / active_count, 4),
            "usage_rate": round(active_count / len(users), 4),
            "active_users": active_count,
            "known_users": len(users),
            "logins": total_logins,
            "sessions": len(all_sessions),
            "avg_session_s": round(statistics.fmean(all_sessions), 1),
            "median_session_s": round(statistics.median(all_sessions), 1),
        },
        "features": features,
        "accounts": accounts,
        "users": user_rows,
        "retention": retention,
        "releases": [
            {
                "day": (_SINCE + timedelta(days=_RELEASE_DAY)).isoformat(),
                "version": "2.4.0",
                "after_days": 7,
                "before": {
                    "since": (_SINCE + timedelta(days=_RELEASE_DAY - 7)).isoformat(),
                    "until": (_SINCE + timedelta(days=_RELEASE_DAY)).isoformat(),
                },
                "dau_before": round(dau_before, 4),
                "dau_after": round(dau_after, 4),
                "features": moved,
            }
        ],
        "lifecycle": lifecycle,
        "power_users": {"l7": curve(7), "l30": curve(30)},
        "activation": activation,
    }


if __name__ == "__main__":
    SAMPLE_PATH.write_text(json.dumps(build_sample(), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {SAMPLE_PATH}")
