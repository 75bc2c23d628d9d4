"""A brute-force usage report (docs/metrics.md) in plain Python over the raw event list.

Written from the definitions (and docs/metrics.md decisions), independently of the
engine: no rollups, no SQL, one obvious loop per metric. Slow, and meant to be.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections import defaultdict
from fractions import Fraction
from typing import Any

from uptake.protocol import Event, ReportFilters
from uptake_aggregator.errors import QueryError

__all__ = ["reference_report"]

DAY = 86_400_000_000
GAP = 30 * 60 * 1_000_000
EPOCH = dt.date(1970, 1, 1)
#: Health weights as exact fractions: an exact half of a point rounds up (docs/metrics.md).
WEIGHTS = {
    "utilization": Fraction(2, 5),
    "stickiness": Fraction(3, 10),
    "growth": Fraction(3, 20),
    "breadth": Fraction(3, 20),
}


def _day(ts: int) -> int:
    return ts // DAY


def _date(day: int) -> str:
    return (EPOCH + dt.timedelta(days=day)).isoformat()


def _window(filters: ReportFilters, today: dt.date) -> tuple[int, int]:
    def parse(text: str) -> int:
        try:
            if len(text) != 10:
                raise ValueError
            return (dt.date.fromisoformat(text) - EPOCH).days
        except ValueError:
            raise QueryError(f"bad date {text}") from None

    until = parse(filters.until) if filters.until else (today - EPOCH).days + 1
    since = parse(filters.since) if filters.since else until - 30
    if since >= until:
        raise QueryError("empty window")
    return since, until


def _sessions(events: list[Event]) -> list[tuple[str, int, int]]:
    """All sessions ever as (user, start ts, duration µs); explicit ones need a start."""
    found: list[tuple[str, int, int]] = []
    by_id: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        if e.session is not None:
            by_id[e.session].append(e)
    for members in by_id.values():
        starts = [e.ts for e in members if e.kind == "session_start"]
        if not starts:
            continue
        start = min(starts)
        ends = [e.ts for e in members if e.kind == "session_end"]
        named = sorted((e.ts, e.id, e.user) for e in members if e.user is not None)
        if not named:
            continue
        user = named[0][2]
        duration = max(max(ends) - start, 0) if ends else max(e.ts for e in members) - start
        found.append((user, start, duration))
    # A session-less event within 30 minutes of one of its user's explicit sessions
    # belongs to that session: it starts no implicit one.
    explicit = list(found)
    loose: dict[str, list[int]] = defaultdict(list)
    for e in events:
        if (
            e.session is None
            and e.user is not None
            and not any(
                user == e.user and start - GAP <= e.ts <= start + duration + GAP
                for user, start, duration in explicit
            )
        ):
            loose[e.user].append(e.ts)
    for user, stamps in loose.items():
        stamps.sort()
        first = last = stamps[0]
        for ts in stamps[1:]:
            if ts - last > GAP:
                found.append((user, first, last - first))
                first = ts
            last = ts
        found.append((user, first, last - first))
    return found


def reference_report(events: list[Event], filters: ReportFilters, today: dt.date) -> dict[str, Any]:
    """The §6 report, by brute force over ``events`` (duplicates by id are dropped)."""
    unique: dict[bytes, Event] = {}
    for e in events:
        unique.setdefault(e.id, e)
    events = list(unique.values())
    since, until = _window(filters, today)
    days = until - since
    since_us, until_us = since * DAY, until * DAY
    before = [e for e in events if e.ts < until_us]
    in_window = [e for e in before if e.ts >= since_us]

    known = sorted({e.user for e in before if e.user is not None})
    account_of: dict[str, str | None] = {}
    for user in known:
        named = [(e.ts, e.id, e.account) for e in before if e.user == user and e.account]
        account_of[user] = max(named)[2] if named else None
    accounts_seen = sorted({e.account for e in before if e.account is not None})
    if filters.account is not None and filters.account not in accounts_seen:
        raise QueryError("unknown account")
    population = [
        u
        for u in known
        if (filters.user is None or u == filters.user)
        and (filters.account is None or account_of[u] == filters.account)
    ]
    pop = set(population)

    def active_days(user: str, lo: int, hi: int) -> set[int]:
        return {_day(e.ts) for e in events if e.user == user and lo <= _day(e.ts) < hi}

    def active_set(lo: int, hi: int, among: set[str] | list[str]) -> set[str]:
        return {u for u in among if active_days(u, lo, hi)}

    # product
    dau = [
        len({e.user for e in events if e.user in pop and _day(e.ts) == d})
        for d in range(since, until)
    ]
    active_pop = active_set(since, until, population)
    all_sessions = _sessions(events)
    window_sessions = [s for s in all_sessions if since_us <= s[1] < until_us]
    pop_sessions = [s for s in window_sessions if s[0] in pop]
    durations = [s[2] for s in pop_sessions]
    logins_of = {u: sum(1 for e in in_window if e.user == u and e.kind == "login") for u in known}
    product = {
        "dau": [{"day": _date(since + i), "users": n} for i, n in enumerate(dau)],
        "wau": len(active_set(until - 7, until, population)),
        "mau": len(active_set(until - 30, until, population)),
        "stickiness": (sum(dau) / days) / len(active_pop) if active_pop else 0.0,
        "usage_rate": len(active_pop) / len(population) if population else None,
        "active_users": len(active_pop),
        "known_users": len(population),
        "logins": sum(logins_of[u] for u in population),
        "sessions": len(pop_sessions),
        "avg_session_s": sum(durations) / len(durations) / 1e6 if durations else None,
        "median_session_s": statistics.median(durations) / 1e6 if durations else None,
    }

    # features
    def feature_account(e: Event) -> str | None:
        return account_of.get(e.user) if e.user is not None else e.account

    feature_events = [e for e in in_window if e.kind == "feature" and e.name is not None]
    features = []
    for name in sorted({e.name for e in feature_events if e.name is not None}):
        if filters.feature is not None and name != filters.feature:
            continue
        mine = [e for e in feature_events if e.name == name]
        if filters.user is not None or filters.account is not None:
            mine = [e for e in mine if e.user in pop]
        if not mine:
            continue
        users = {e.user for e in mine if e.user is not None}
        accounts = {feature_account(e) for e in mine} - {None}
        features.append(
            {
                "name": name,
                "events": len(mine),
                "users": len(users),
                "accounts": len(accounts),
                "adoption": len(users) / len(active_pop) if active_pop else None,
            }
        )
    features.sort(key=lambda f: (-f["events"], f["name"]))
    product_features = {e.name for e in feature_events}

    # accounts
    if filters.account is not None:
        listed = [filters.account]
    elif filters.user is not None:
        listed = [a for a in [account_of.get(filters.user)] if a is not None]
    else:
        listed = accounts_seen

    def seats_at(account: str, end_us: int) -> int | None:
        history = [
            (e.ts, e.id, e.value)
            for e in before
            if e.kind == "seats" and e.account == account and e.value is not None and e.ts < end_us
        ]
        return max(history)[2] if history else None

    accounts = []
    for account in sorted(listed):
        members = [u for u in known if account_of[u] == account]
        now = active_set(since, until, members)
        prev = active_set(since - days, since, members)
        seats = seats_at(account, until_us)
        utilization = len(now) / seats if seats is not None and seats > 0 else None
        shares = []
        for d in range(since, until):
            day_seats = seats_at(account, (d + 1) * DAY)
            if day_seats is None or day_seats <= 0:
                continue
            logged = {
                e.user
                for e in events
                if e.user in members and e.kind == "login" and _day(e.ts) == d
            }
            shares.append(len(logged) / day_seats)
        account_dau = sum(len(active_set(d, d + 1, members)) for d in range(since, until))
        growth = len(now) / len(prev) if prev else None
        breadth = len({e.name for e in feature_events if feature_account(e) == account})
        integrations = len(
            {
                str(e.props["integration"])
                for e in in_window
                if e.props and "integration" in e.props and feature_account(e) == account
            }
        )
        inputs = {
            "utilization": (
                None if seats is None or seats <= 0 else min(Fraction(len(now), seats), 1)
            ),
            "stickiness": Fraction(account_dau, days * len(now)) if now else Fraction(0),
            "growth": None if not prev else min(Fraction(len(now), len(prev)), 1),
            "breadth": Fraction(breadth, len(product_features)) if product_features else None,
        }
        weight = sum(WEIGHTS[k] for k, v in inputs.items() if v is not None)
        score = sum(WEIGHTS[k] * v for k, v in inputs.items() if v is not None) / weight
        health = math.floor(score * 100 + Fraction(1, 2))
        flags = []
        if prev and len(now & prev) * 10 <= len(prev) * 7:
            flags.append("churn_risk")
        if utilization is not None and utilization >= 0.9:
            flags.append("upsell")
        if seats is not None and len(now) < seats:
            flags.append("idle_seats")
        accounts.append(
            {
                "account": account,
                "seats": seats,
                "active_users": len(now),
                "utilization": utilization,
                "adoption_rate": sum(shares) / len(shares) if shares else None,
                "growth": growth,
                "integrations": integrations,
                "breadth": breadth,
                "health": health,
                "band": "green" if health >= 70 else "yellow" if health >= 40 else "red",
                "flags": flags,
            }
        )

    # users
    users = []
    for user in population:
        n_active = len(active_days(user, since, until))
        mine = [s for s in window_sessions if s[0] == user]
        if n_active * 5 >= days * 4:
            segment = "daily"
        elif n_active * 5 >= days * 2:
            segment = "frequent"
        else:
            segment = "occasional" if n_active else "inactive"
        last = max(e.ts for e in before if e.user == user)
        users.append(
            {
                "user": user,
                "account": account_of[user],
                "active_days": n_active,
                "logins": logins_of[user],
                "sessions": len(mine),
                "avg_session_s": sum(s[2] for s in mine) / len(mine) / 1e6 if mine else None,
                "features": len({e.name for e in feature_events if e.user == user}),
                "segment": segment,
                "last_seen": (
                    dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
                    + dt.timedelta(microseconds=last)
                ).isoformat(),
            }
        )

    # retention
    cohorts: dict[dt.date, list[str]] = defaultdict(list)
    for user in population:
        first = EPOCH + dt.timedelta(days=min(_day(e.ts) for e in events if e.user == user))
        monday = first - dt.timedelta(days=first.weekday())
        if since <= (monday - EPOCH).days < until:
            cohorts[monday].append(user)
    retention = []
    last_day = EPOCH + dt.timedelta(days=until - 1)
    for monday in sorted(cohorts):
        members = cohorts[monday]
        weeks = []
        k = 0
        while monday + dt.timedelta(weeks=k) <= last_day:
            lo = (monday - EPOCH).days + 7 * k
            weeks.append(len(active_set(lo, min(lo + 7, until), members)) / len(members))
            k += 1
        iso = monday.isocalendar()
        retention.append(
            {"cohort": f"{iso[0]}-W{iso[1]:02d}", "size": len(members), "weeks": weeks}
        )

    releases = sorted(
        (e.ts, e.id, e.name) for e in in_window if e.kind == "release" and e.name is not None
    )
    return {
        "window": {"since": _date(since), "until": _date(until)},
        "product": product,
        "features": features,
        "accounts": accounts,
        "users": users,
        "retention": retention,
        "releases": [{"day": _date(_day(ts)), "version": name} for ts, _, name in releases],
    }
