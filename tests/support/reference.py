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
    explicit: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for user, start, duration in found:
        explicit[user].append((start, duration))
    loose: dict[str, list[int]] = defaultdict(list)
    for e in events:
        if (
            e.session is None
            and e.user is not None
            and not any(
                start - GAP <= e.ts <= start + duration + GAP
                for start, duration in explicit.get(e.user, ())
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


def _monday(day: int) -> int:
    return day - (EPOCH + dt.timedelta(days=day)).weekday()


def _exact_median(values: list[Fraction]) -> Fraction:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def reference_report(
    events: list[Event],
    filters: ReportFilters,
    today: dt.date,
    core: list[str] | None = None,
) -> dict[str, Any]:
    """The §6 and engagement report, by brute force over ``events`` (dedup by id).

    ``core``: the configured core features (``filters.core`` wins when given).
    """
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
    # Each user's events, in list order: the per-user loops below scan only these (a
    # grouping, not a rollup: every figure is still counted from the raw events).
    events_of: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        if e.user is not None:
            events_of[e.user].append(e)
    before_of = {u: [e for e in mine if e.ts < until_us] for u, mine in events_of.items()}
    # ... and each day's, for the per-day loops.
    events_on: dict[int, list[Event]] = defaultdict(list)
    for e in events:
        events_on[_day(e.ts)].append(e)
    before_on = {d: [e for e in mine if e.ts < until_us] for d, mine in events_on.items()}

    def active_days(user: str, lo: int, hi: int) -> set[int]:
        return {_day(e.ts) for e in events_of.get(user, ()) if lo <= _day(e.ts) < hi}

    def active_set(lo: int, hi: int, among: set[str] | list[str]) -> set[str]:
        return {u for u in among if active_days(u, lo, hi)}

    # product
    dau = [
        len({e.user for e in events_on.get(d, ()) if e.user in pop}) for d in range(since, until)
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
    feature_days: dict[str, Fraction | None] = {}
    for name in sorted({e.name for e in feature_events if e.name is not None}):
        mine = [e for e in feature_events if e.name == name]
        if filters.user is not None or filters.account is not None:
            mine = [e for e in mine if e.user in pop]
        if not mine:
            continue
        users = {e.user for e in mine if e.user is not None}
        accounts = {feature_account(e) for e in mine} - {None}
        # Mean over the feature's users of their distinct days of use in the window.
        per_user = [len({_day(e.ts) for e in mine if e.user == u}) for u in sorted(users)]
        feature_days[name] = Fraction(sum(per_user), len(per_user)) if per_user else None
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
    matrix = {
        f["name"]: (Fraction(f["users"], len(active_pop)), feature_days[f["name"]])
        for f in features
        if active_pop and feature_days[f["name"]] is not None
    }
    if matrix:
        mid_adoption = _exact_median([a for a, _ in matrix.values()])
        mid_days = _exact_median([d for _, d in matrix.values() if d is not None])
    for f in features:
        found_days = feature_days[f["name"]]
        f["days_per_user"] = float(found_days) if found_days is not None else None
        if f["name"] not in matrix:
            f["quadrant"] = None
            continue
        adoption, often = matrix[f["name"]]
        assert often is not None
        if adoption >= mid_adoption and often >= mid_days:
            f["quadrant"] = "core"
        elif often >= mid_days:
            f["quadrant"] = "power"
        elif adoption >= mid_adoption:
            f["quadrant"] = "one_off"
        else:
            f["quadrant"] = "improve"
    if filters.feature is not None:
        features = [f for f in features if f["name"] == filters.feature]
    product_features = {e.name for e in feature_events}

    # accounts
    if filters.account is not None:
        listed = [filters.account]
    elif filters.user is not None:
        listed = [a for a in [account_of.get(filters.user)] if a is not None]
    else:
        listed = accounts_seen

    seat_events = [e for e in before if e.kind == "seats"]

    def seats_at(account: str, end_us: int) -> int | None:
        history = [
            (e.ts, e.id, e.value)
            for e in seat_events
            if e.account == account and e.value is not None and e.ts < end_us
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
                e.user for e in events_on.get(d, ()) if e.user in members and e.kind == "login"
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

    # -- engagement: only events before `until` exist -------------------------------------
    first_ever = {u: min(e.ts for e in before if e.user == u) for u in known}

    def active_in(u: str, lo: int, hi: int) -> bool:
        return any(lo <= _day(e.ts) < hi for e in before_of.get(u, ()))

    mondays = list(range(_monday(since), _monday(until - 1) + 1, 7))
    lifecycle = []
    for m in mondays:
        now = {u for u in population if active_in(u, m, m + 7)}
        prev = {u for u in population if active_in(u, m - 7, m)}
        new = {u for u in now if m <= _day(first_ever[u]) < m + 7}
        returning = (now & prev) - new
        resurrecting = now - prev - new
        dormant = prev - now
        iso = (EPOCH + dt.timedelta(days=m)).isocalendar()
        lifecycle.append(
            {
                "week": f"{iso[0]}-W{iso[1]:02d}",
                "new": len(new),
                "returning": len(returning),
                "resurrecting": len(resurrecting),
                "dormant": len(dormant),
                "pulse": (len(new) + len(resurrecting)) / len(dormant) if dormant else None,
            }
        )
    for row in accounts:
        members = [u for u in known if account_of[u] == row["account"]]
        row["weekly_active"] = [sum(1 for u in members if active_in(u, m, m + 7)) for m in mondays]

    def distinct_days(u: str, lo: int, hi: int) -> int:
        return len({_day(e.ts) for e in before_of.get(u, ()) if lo <= _day(e.ts) < hi})

    power_users = {
        f"l{n}": [
            sum(1 for u in population if distinct_days(u, until - n, until) == k)
            for k in range(1, n + 1)
        ]
        for n in (7, 30)
    }

    release_rows = []
    for ts, _, version in releases:
        d = _day(ts)
        after_days = max(min(d + 7, until) - d, 1)
        spans = {"before": range(d - after_days, d), "after": range(d, d + after_days)}
        used: set[str] = set()
        for span in spans.values():
            used |= {
                e.name
                for e in before
                if e.kind == "feature"
                and e.name is not None
                and _day(e.ts) in span
                and ((filters.user is None and filters.account is None) or e.user in pop)
            }
        if filters.feature is not None:
            used &= {filters.feature}

        def mean_daily(span: range, name: str | None) -> float:
            total = 0
            for x in span:
                total += len(
                    {
                        e.user
                        for e in before_on.get(x, ())
                        if e.user in pop
                        and (name is None or (e.kind == "feature" and e.name == name))
                    }
                )
            return total / len(span)

        moved = []
        for name in used:
            users_before = mean_daily(spans["before"], name)
            users_after = mean_daily(spans["after"], name)
            moved.append(
                {
                    "name": name,
                    "users_before": users_before,
                    "users_after": users_after,
                    "change": users_after / users_before - 1 if users_before else None,
                }
            )
        moved.sort(
            key=lambda m: (
                m["change"] is None,
                m["change"] if m["change"] is not None else 0.0,
                m["name"],
            )
        )
        release_rows.append(
            {
                "day": _date(d),
                "version": version,
                "after_days": after_days,
                "before": {"since": _date(d - after_days), "until": _date(d)},
                "dau_before": mean_daily(spans["before"], None),
                "dau_after": mean_daily(spans["after"], None),
                "features": moved,
            }
        )

    wanted_core = filters.core if filters.core is not None else core
    activation: dict[str, Any] | None = None
    if wanted_core:
        names = sorted(set(wanted_core))
        newcomers = [u for u in population if since_us <= first_ever[u] < until_us]
        ttv: dict[str, int | None] = {}
        for u in newcomers:
            uses = [e.ts for e in before if e.user == u and e.kind == "feature" and e.name in names]
            ttv[u] = min(uses) - first_ever[u] if uses else None
        done = [t for t in ttv.values() if t is not None and t <= 14 * DAY]
        by_day: list[float | None] = []
        for k in range(1, 15):
            eligible = [u for u in newcomers if until_us - first_ever[u] >= k * DAY]
            hit = [u for u in eligible if (t := ttv[u]) is not None and t <= k * DAY]
            by_day.append(len(hit) / len(eligible) if eligible else None)
        activation = {
            "core": names,
            "new_users": len(newcomers),
            "activated": len(done),
            "rate": len(done) / len(newcomers) if newcomers else None,
            "median_ttv_s": statistics.median(done) / 1e6 if done else None,
            "by_day": by_day,
        }
    return {
        "window": {"since": _date(since), "until": _date(until)},
        "product": product,
        "features": features,
        "accounts": accounts,
        "users": users,
        "retention": retention,
        "releases": release_rows,
        "lifecycle": lifecycle,
        "power_users": power_users,
        "activation": activation,
    }
