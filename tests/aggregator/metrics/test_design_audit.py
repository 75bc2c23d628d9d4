"""An independent audit of the §6 report: a brute-force oracle written from DESIGN §5/§6.

The oracle below reads only DESIGN.md and the interpretations docs/metrics.md fixes where
DESIGN is open; it shares no code with the engine or with ``reference.py``. It works on
the raw events (after dedup by id, as storage does) in plain Python: no rollups, no SQL.
Random adversarial datasets (users switching accounts, user-less events, seats changing
within and across days, sessions with and without ends spanning midnight and ``until``,
events exactly on day boundaries and exactly 30 minutes apart, duplicates, out-of-order
ids) are ingested through the real ``Storage`` and every report field is compared.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.aggregator.metrics.conftest import ingest_batches
from uptake.protocol import Event, ReportFilters
from uptake_aggregator.errors import QueryError
from uptake_aggregator.metrics import build_report

DAY = 86_400_000_000
MINUTE = 60_000_000
GAP = 30 * MINUTE
EPOCH = dt.date(1970, 1, 1)
#: 2026-03-02, a Monday: generated histories start around here.
BASE = (dt.date(2026, 3, 2) - EPOCH).days

Row = dict[str, Any]


# --------------------------------------------------------------------------- the oracle


def _day(ts: int) -> int:
    return ts // DAY


def _date(day: int) -> str:
    return (EPOCH + dt.timedelta(days=day)).isoformat()


def _parse(day: str) -> int:
    return (dt.date.fromisoformat(day) - EPOCH).days


def _key(e: Event) -> tuple[int, bytes]:
    """Order of "latest"/"earliest": by time, ties by event id (docs/metrics.md)."""
    return (e.ts, e.id)


def _iso(ts: int) -> str:
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=ts)
    return moment.isoformat()


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


class Oracle:
    """The DESIGN §6 report over a list of raw events, computed the slow, obvious way."""

    def __init__(self, events: Iterable[Event], filters: ReportFilters, today: dt.date) -> None:
        unique: dict[bytes, Event] = {}
        for e in events:
            unique.setdefault(e.id, e)  # §2: the daemon drops duplicates by id
        self.all = sorted(unique.values(), key=_key)
        self.f = filters
        # §5: until defaults to tomorrow, since to until - 30 days; half-open in days.
        self.until = _parse(filters.until) if filters.until else (today - EPOCH).days + 1
        self.since = _parse(filters.since) if filters.since else self.until - 30
        self.n = self.until - self.since
        if self.n <= 0:
            raise QueryError("empty window")
        self.until_us = self.until * DAY
        self.since_us = self.since * DAY
        # Only events before `until` exist for the report (sessions excepted).
        self.ev = [e for e in self.all if e.ts < self.until_us]
        self.win = [e for e in self.ev if self.since <= _day(e.ts)]
        self.days = range(self.since, self.until)

        # docs/metrics.md: "the empty string is not a user" (the engine disagrees, and the
        # docs' own "Known limits" say otherwise: the datasets below avoid empty ids).
        self.known = {e.user for e in self.ev if e.user}
        self.account_of: dict[str, str | None] = {u: None for u in self.known}
        for e in self.ev:  # ascending: the last one naming an account wins
            if e.user and e.account is not None:
                self.account_of[e.user] = e.account
        self.active_days: dict[str, set[int]] = defaultdict(set)
        for e in self.ev:
            if e.user:
                self.active_days[e.user].add(_day(e.ts))
        self.sessions = self._sessions()
        #: Exact (rational) health score per account, before rounding.
        self.exact_health: dict[str, Fraction] = {}

    # -- helpers -------------------------------------------------------------------

    def active(self, users: Iterable[str], lo: int, hi: int) -> set[str]:
        """Users of ``users`` with an event on a day in [lo, hi)."""
        return {u for u in users if any(lo <= d < hi for d in self.active_days[u])}

    def members(self, account: str) -> set[str]:
        return {u for u in self.known if self.account_of[u] == account}

    def _sessions(self) -> list[tuple[str, int, int]]:
        """(user, start ts, duration µs) of every session whose user is known."""
        out: list[tuple[str, int, int]] = []
        margins: dict[str, list[tuple[int, int]]] = defaultdict(list)
        by_id: dict[str, list[Event]] = defaultdict(list)
        for e in self.all:
            if e.session is not None:
                by_id[e.session].append(e)
        for evs in by_id.values():
            starts = [e.ts for e in evs if e.kind == "session_start"]
            if not starts:
                continue  # an id with no session_start is not a session
            start = min(starts)
            ends = [e.ts for e in evs if e.kind == "session_end"]
            stop = max(ends) if ends else max(e.ts for e in evs)
            named = [e for e in evs if e.user]
            if not named:
                continue
            user = min(named, key=_key).user
            assert user is not None
            margins[user].append((start - GAP, max(start, stop) + GAP))
            if user in self.known:
                out.append((user, start, max(0, stop - start)))
        per_user: dict[str, list[int]] = defaultdict(list)
        for e in self.all:
            # §5: from 30 minutes before an explicit session's start to 30 minutes after
            # its end, a session-less event of its user belongs to it.
            if (
                e.user
                and e.session is None
                and not any(lo <= e.ts <= hi for lo, hi in margins[e.user])
            ):
                per_user[e.user].append(e.ts)
        for user, stamps in per_user.items():
            if user not in self.known:
                continue
            stamps.sort()
            first = last = stamps[0]
            for ts in stamps[1:]:
                if ts - last > GAP:
                    out.append((user, first, last - first))
                    first = ts
                last = ts
            out.append((user, first, last - first))
        return out

    def window_sessions(self, users: set[str]) -> list[int]:
        return [
            dur
            for user, start, dur in self.sessions
            if user in users and self.since <= _day(start) < self.until
        ]

    def seats(self, account: str, before_us: int) -> int | None:
        latest: Event | None = None
        for e in self.ev:
            if (
                e.kind == "seats"
                and e.account == account
                and e.ts < before_us
                and e.value is not None
            ):
                latest = e
        return None if latest is None else latest.value

    def feature_account(self, e: Event) -> str | None:
        """A user's event counts for the user's account, a user-less one for its own."""
        return self.account_of[e.user] if e.user else e.account

    # -- report --------------------------------------------------------------------

    def report(self) -> Row:
        f = self.f
        filtered = f.account is not None or f.user is not None
        if f.account is not None and not any(e.account == f.account for e in self.ev):
            raise QueryError(f"unknown account {f.account}")
        pop = {
            u
            for u in self.known
            if (f.account is None or self.account_of[u] == f.account)
            and (f.user is None or u == f.user)
        }
        active = self.active(pop, self.since, self.until)
        dau: list[Row] = [
            {"day": _date(d), "users": len({u for u in pop if d in self.active_days[u]})}
            for d in self.days
        ]
        durs = self.window_sessions(pop)
        product = {
            "dau": dau,
            "wau": len(self.active(pop, self.until - 7, self.until)),
            "mau": len(self.active(pop, self.until - 30, self.until)),
            "stickiness": (sum(r["users"] for r in dau) / self.n / len(active) if active else 0.0),
            "usage_rate": _ratio(len(active), len(pop)),
            "active_users": len(active),
            "known_users": len(pop),
            "logins": sum(1 for e in self.win if e.kind == "login" and e.user in pop),
            "sessions": len(durs),
            "avg_session_s": statistics.mean(durs) / 1e6 if durs else None,
            "median_session_s": statistics.median(durs) / 1e6 if durs else None,
        }
        if f.account is not None:
            listed = [f.account]
        elif f.user is not None:
            acct = self.account_of.get(f.user)
            listed = [acct] if acct is not None else []
        else:
            listed = sorted({e.account for e in self.ev if e.account is not None})
        return {
            "window": {"since": _date(self.since), "until": _date(self.until)},
            "product": product,
            "features": self.features(pop, active, filtered),
            "accounts": [self.account_row(a) for a in listed],
            "users": [self.user_row(u) for u in sorted(pop)],
            "retention": self.retention(pop),
            "releases": [
                self.release_row(e, pop, filtered) for e in self.win if e.kind == "release"
            ],
            "lifecycle": self.lifecycle(pop),
            "power_users": {
                "l7": self.power_curve(pop, 7),
                "l30": self.power_curve(pop, 30),
            },
            "activation": self.activation(pop),
        }

    # -- §7 engagement, from DESIGN §7 and docs/metrics.md ---------------------------

    def iso_weeks(self) -> list[tuple[int, int]]:
        """(ISO year, ISO week) from the week of `since` to the week of `until` - 1 day."""
        out: list[tuple[int, int]] = []
        for d in range(self.since, self.until):
            year, week, _ = (EPOCH + dt.timedelta(days=d)).isocalendar()
            if (year, week) not in out:
                out.append((year, week))
        return out

    def week_of(self, day: int) -> tuple[int, int]:
        year, week, _ = (EPOCH + dt.timedelta(days=day)).isocalendar()
        return (year, week)

    def week_before(self, week: tuple[int, int]) -> tuple[int, int]:
        monday = dt.date.fromisocalendar(week[0], week[1], 1)
        return self.week_of((monday - EPOCH).days - 7)

    def weeks_active(self, u: str) -> set[tuple[int, int]]:
        return {self.week_of(d) for d in self.active_days[u]}  # active_days: before until

    def lifecycle(self, pop: set[str]) -> list[Row]:
        rows = []
        for week in self.iso_weeks():
            prior = self.week_before(week)
            counts = {"new": 0, "returning": 0, "resurrecting": 0, "dormant": 0}
            for u in pop:
                mine = self.weeks_active(u)
                first_week = self.week_of(min(self.active_days[u]))
                if week in mine:
                    if first_week == week:
                        counts["new"] += 1
                    elif prior in mine:
                        counts["returning"] += 1
                    else:
                        counts["resurrecting"] += 1
                elif prior in mine:
                    counts["dormant"] += 1
            pulse = (
                (counts["new"] + counts["resurrecting"]) / counts["dormant"]
                if counts["dormant"]
                else None
            )
            rows.append({"week": f"{week[0]}-W{week[1]:02d}", **counts, "pulse": pulse})
        return rows

    def power_curve(self, pop: set[str], n: int) -> list[int]:
        curve = [0] * n
        for u in pop:
            k = len([d for d in self.active_days[u] if self.until - n <= d < self.until])
            if k:
                curve[k - 1] += 1
        return curve

    def daily_users(self, d: int, pop: set[str], name: str | None) -> int:
        return len(
            {
                e.user
                for e in self.ev
                if e.user in pop
                and _day(e.ts) == d
                and (name is None or (e.kind == "feature" and e.name == name))
            }
        )

    def release_row(self, release: Event, pop: set[str], filtered: bool) -> Row:
        day = _day(release.ts)
        after = max(1, min(day + 7, self.until) - day)
        before_days = range(day - after, day)
        after_days = range(day, day + after)
        names = {
            e.name
            for e in self.ev
            if e.kind == "feature"
            and e.name is not None
            and day - after <= _day(e.ts) < day + after
            and (not filtered or e.user in pop)
        }
        if self.f.feature is not None:
            names = {n for n in names if n == self.f.feature}
        moved = []
        for name in names:
            b = Fraction(sum(self.daily_users(d, pop, name) for d in before_days), after)
            a = Fraction(sum(self.daily_users(d, pop, name) for d in after_days), after)
            change = None if b == 0 else a / b - 1
            moved.append((change is None, change or 0, name, b, a, change))
        moved.sort(key=lambda m: m[:3])
        return {
            "day": _date(day),
            "version": release.name,
            "after_days": after,
            "before": {"since": _date(day - after), "until": _date(day)},
            "dau_before": sum(self.daily_users(d, pop, None) for d in before_days) / after,
            "dau_after": sum(self.daily_users(d, pop, None) for d in after_days) / after,
            "features": [
                {
                    "name": name,
                    "users_before": float(b),
                    "users_after": float(a),
                    "change": None if change is None else float(change),
                }
                for _, _, name, b, a, change in moved
            ],
        }

    def activation(self, pop: set[str]) -> Row | None:
        core = self.f.core
        if not core:
            return None
        first = {u: min(e.ts for e in self.ev if e.user == u) for u in pop}
        new = [u for u in pop if self.since_us <= first[u] < self.until_us]
        ttv: dict[str, int] = {}
        for u in new:
            uses = sorted(
                e.ts for e in self.ev if e.user == u and e.kind == "feature" and e.name in core
            )
            if uses:
                ttv[u] = uses[0] - first[u]
        activated = sorted(t for t in ttv.values() if t <= 14 * DAY)
        by_day: list[float | None] = []
        for k in range(1, 15):
            seen = [u for u in new if first[u] + k * DAY <= self.until_us]
            ok = [u for u in seen if u in ttv and ttv[u] <= k * DAY]
            by_day.append(len(ok) / len(seen) if seen else None)
        median = None
        if activated:
            mid = len(activated) // 2
            median = (
                activated[mid] / 1e6
                if len(activated) % 2
                else (activated[mid - 1] + activated[mid]) / 2 / 1e6
            )
        return {
            "core": sorted(set(core)),
            "new_users": len(new),
            "activated": len(activated),
            "rate": _ratio(len(activated), len(new)),
            "median_ttv_s": median,
            "by_day": by_day,
        }

    def features(self, pop: set[str], active: set[str], filtered: bool) -> list[Row]:
        rows: dict[str, list[Event]] = defaultdict(list)
        for e in self.win:
            if e.kind == "feature" and e.name is not None and (not filtered or e.user in pop):
                rows[e.name].append(e)
        out: list[Row] = []
        exact: dict[str, tuple[Fraction, Fraction]] = {}
        for name, evs in rows.items():
            users = {e.user for e in evs if e.user}
            accounts = {a for e in evs if (a := self.feature_account(e)) is not None}
            # §7: mean over the feature's users of their distinct days of use (in window).
            pairs = {(e.user, _day(e.ts)) for e in evs if e.user}
            days = Fraction(len(pairs), len(users)) if users else None
            if days is not None and active:
                exact[name] = (Fraction(len(users), len(active)), days)
            out.append(
                {
                    "name": name,
                    "events": len(evs),
                    "users": len(users),
                    "accounts": len(accounts),
                    "adoption": _ratio(len(users), len(active)),
                    "days_per_user": None if days is None else float(days),
                    "quadrant": None,
                }
            )
        if exact:
            big = statistics.median(sorted(a for a, _ in exact.values()))
            often = statistics.median(sorted(d for _, d in exact.values()))
            for r in out:
                if r["name"] in exact:
                    a, d = exact[r["name"]]
                    r["quadrant"] = {
                        (True, True): "core",
                        (False, True): "power",
                        (True, False): "one_off",
                        (False, False): "improve",
                    }[(a >= big, d >= often)]
        out.sort(key=lambda r: (-r["events"], r["name"]))
        if self.f.feature is not None:
            out = [r for r in out if r["name"] == self.f.feature]
        return out

    def account_row(self, a: str) -> Row:
        mem = self.members(a)
        act = self.active(mem, self.since, self.until)
        prev = self.active(mem, self.since - self.n, self.since)
        seats = self.seats(a, self.until_us)
        # A zero (or negative) seat count is a zero denominator: unknown (docs/metrics.md).
        util = Fraction(len(act), seats) if seats is not None and seats > 0 else None
        daily: list[Fraction] = []
        for d in self.days:
            s = self.seats(a, (d + 1) * DAY)
            if s is not None and s > 0:
                logged = {
                    e.user
                    for e in self.win
                    if e.kind == "login" and e.user in mem and _day(e.ts) == d
                }
                daily.append(Fraction(len(logged), s))
        growth = Fraction(len(act), len(prev)) if prev else None
        mine = [e for e in self.win if (e.user in mem) or (not e.user and e.account == a)]
        integrations = {
            str(e.props["integration"]) for e in mine if e.props and "integration" in e.props
        }
        breadth = len({e.name for e in mine if e.kind == "feature" and e.name is not None})
        product_features = {e.name for e in self.win if e.kind == "feature" and e.name is not None}
        # Health (docs/metrics.md): weighted mean of the known inputs, scaled weights.
        stick = (
            Fraction(
                sum(len({u for u in act if d in self.active_days[u]}) for d in self.days),
                self.n * len(act),
            )
            if act
            else Fraction(0)
        )
        inputs: list[tuple[Fraction, Fraction]] = [(Fraction(3, 10), stick)]
        if util is not None:
            inputs.append((Fraction(4, 10), min(util, Fraction(1))))
        if growth is not None:
            inputs.append((Fraction(15, 100), min(growth, Fraction(1))))
        if product_features:
            inputs.append((Fraction(15, 100), Fraction(breadth, len(product_features))))
        weights = sum((w for w, _ in inputs), Fraction(0))
        score = sum((w * x for w, x in inputs), Fraction(0)) / weights * 100
        self.exact_health[a] = score
        health = int(score + Fraction(1, 2))  # half up; score >= 0
        flags = []
        returning = len(prev & act)
        if prev and 10 * returning <= 7 * len(prev):
            flags.append("churn_risk")
        if util is not None and util >= Fraction(9, 10):
            flags.append("upsell")
        if seats is not None and len(act) < seats:
            flags.append("idle_seats")
        return {
            "account": a,
            "seats": seats,
            "active_users": len(act),
            "utilization": None if util is None else float(util),
            "adoption_rate": float(sum(daily) / len(daily)) if daily else None,
            "growth": None if growth is None else float(growth),
            "integrations": len(integrations),
            "breadth": breadth,
            "health": health,
            "band": "green" if health >= 70 else "yellow" if health >= 40 else "red",
            "flags": flags,
            "weekly_active": [
                sum(1 for u in mem if week in self.weeks_active(u)) for week in self.iso_weeks()
            ],
        }

    def user_row(self, u: str) -> Row:
        days = {d for d in self.active_days[u] if self.since <= d < self.until}
        durs = self.window_sessions({u})
        n, d = self.n, len(days)
        segment = (
            "daily"
            if 5 * d >= 4 * n
            else "frequent"
            if 5 * d >= 2 * n
            else "occasional"
            if d > 0
            else "inactive"
        )
        mine = [e for e in self.win if e.user == u]
        return {
            "user": u,
            "account": self.account_of[u],
            "active_days": d,
            "logins": sum(1 for e in mine if e.kind == "login"),
            "sessions": len(durs),
            "avg_session_s": statistics.mean(durs) / 1e6 if durs else None,
            "features": len({e.name for e in mine if e.kind == "feature" and e.name is not None}),
            "segment": segment,
            "last_seen": _iso(max(e.ts for e in self.ev if e.user == u)),
        }

    def retention(self, pop: set[str]) -> list[Row]:
        cohorts: dict[int, set[str]] = defaultdict(set)
        for u in pop:
            first = min(self.active_days[u])
            cohorts[first - (EPOCH + dt.timedelta(days=first)).weekday()].add(u)
        out = []
        for monday in sorted(cohorts):
            if not self.since <= monday < self.until:
                continue
            users = cohorts[monday]
            weeks = []
            k = 0
            while monday + 7 * k <= self.until - 1:
                lo = monday + 7 * k
                hi = min(lo + 7, self.until)
                weeks.append(len(self.active(users, lo, hi)) / len(users))
                k += 1
            year, week, _ = (EPOCH + dt.timedelta(days=monday)).isocalendar()
            out.append({"cohort": f"{year}-W{week:02d}", "size": len(users), "weeks": weeks})
        return out


# --------------------------------------------------------------------------- datasets

USERS = ("u1", "u2", "u3", "U1", "é")
ACCOUNTS = ("a1", "a2", "A1")
FEATURES = ("f1", "f2", "F1", "f3")
#: Times of day that sit on or next to a boundary: midnight, a bucket edge, the last µs.
EDGES = (0, 1, GAP, DAY - GAP, DAY - 1, 12 * 60 * MINUTE)
#: Steps inside a burst: exactly 30 minutes stays one implicit session, 30 min + 1 µs splits.
STEPS = (0, 1, MINUTE, GAP - 1, GAP, GAP + 1, 2 * GAP, DAY)

_ids = itertools.count()


class Draw:
    """Builds events from a hypothesis-drawn ``random.Random`` (ids unique, not time-ordered)."""

    def __init__(self, rng: random.Random, base: int, span: int) -> None:
        self.rng, self.base, self.span = rng, base, span
        self.events: list[Event] = []

    def ts(self) -> int:
        day = self.base + self.rng.randrange(-6, self.span)
        if self.rng.random() < 0.4:
            return max(0, day * DAY + self.rng.choice(EDGES) - self.rng.choice((0, 0, DAY)))
        return day * DAY + self.rng.randrange(DAY)

    def user(self) -> str | None:
        return self.rng.choice(USERS) if self.rng.random() < 0.9 else None

    def account(self) -> str | None:
        return self.rng.choice(ACCOUNTS) if self.rng.random() < 0.6 else None

    def add(self, ts: int, kind: str, **fields: Any) -> None:
        # A random id (from the seeded generator, so an example replays exactly): ties in
        # ts are broken by an order unrelated to arrival or time.
        event_id = self.rng.randbytes(16)
        self.events.append(Event(id=event_id, ts=max(0, ts), kind=kind, **fields))  # type: ignore[arg-type]

    def dataset(self) -> list[list[Event]]:
        rng = self.rng
        for _ in range(rng.randrange(0, 30)):
            kind = rng.choice(("login", "logout", "feature", "feature", "identify"))
            fields: dict[str, Any] = {"user": self.user(), "account": self.account()}
            if kind == "feature":
                fields["name"] = rng.choice(FEATURES)
            if rng.random() < 0.2:
                fields["props"] = {"integration": rng.choice(("slack", "jira", "1", 1, True, 1.5))}
            self.add(self.ts(), kind, **fields)
        for _ in range(rng.randrange(0, 4)):  # session-less bursts around the 30-minute gap
            user, account, ts = self.user(), self.account(), self.ts()
            for _ in range(rng.randrange(1, 5)):
                self.add(
                    ts,
                    rng.choice(("feature", "login")),
                    user=user,
                    account=account,
                    name=rng.choice(FEATURES),
                )
                ts += rng.choice(STEPS)
        for _ in range(rng.randrange(0, 4)):  # explicit sessions, shared ids, some unended
            sid, user, ts = f"s{rng.randrange(4)}", self.user(), self.ts()
            if rng.random() < 0.85:
                self.add(ts, "session_start", user=user, account=self.account(), session=sid)
            for _ in range(rng.randrange(0, 3)):
                other = user if rng.random() < 0.7 else self.user()
                self.add(
                    ts + rng.choice((MINUTE, GAP, DAY // 2, DAY, -MINUTE)),
                    "feature",
                    user=other,
                    session=sid,
                    name=rng.choice(FEATURES),
                )
            if rng.random() < 0.6:
                self.add(
                    ts + rng.choice((MINUTE, 2 * GAP, DAY, 3 * DAY, -MINUTE)),
                    "session_end",
                    user=user if rng.random() < 0.7 else None,
                    session=sid,
                    value=rng.choice((None, 5)),
                )
        for _ in range(rng.randrange(0, 3)):  # a user switching accounts at one instant
            user, ts = rng.choice(USERS), self.ts()
            for account in rng.sample(ACCOUNTS, 2):
                self.add(ts, "identify", user=user, account=account)
        for _ in range(rng.randrange(0, 5)):  # seats, sometimes changed again within the day
            account, ts = rng.choice(ACCOUNTS), self.ts()
            self.add(
                ts,
                "seats",
                account=account,
                value=rng.choice((0, 1, 2, 3, 5, -1)),
                user=rng.choice((None, None, *USERS)),
            )
            if rng.random() < 0.3:
                self.add(
                    ts + rng.choice((0, 1, MINUTE, DAY)),
                    "seats",
                    account=account,
                    value=rng.choice((0, 1, 2, 4)),
                )
        for _ in range(rng.randrange(0, 3)):
            self.add(self.ts(), "release", name=f"v{rng.randrange(4)}")
        events = self.events
        if events and rng.random() < 0.3:  # resent events: the same id stored once
            events += [rng.choice(events) for _ in range(3)]
        rng.shuffle(events)
        k = rng.randrange(1, 4)
        return [events[i::k] for i in range(k)]

    def filters(self) -> ReportFilters:
        rng = self.rng
        since = until = None
        roll = rng.random()
        if roll < 0.1:
            since = _date(self.base + rng.randrange(-6, 25))
        elif roll < 0.85:
            end = self.base + rng.randrange(-6, self.span + 6)
            until = _date(end)
            if rng.random() < 0.8:
                since = _date(end - rng.choice((1, 2, 3, 5, 7, 10, 14, 30, 40)))
        fields: dict[str, str] = {}
        roll = rng.random()
        if roll < 0.15:
            fields["account"] = rng.choice((*ACCOUNTS, "nobody"))
        elif roll < 0.3:
            fields["user"] = rng.choice((*USERS, "u9"))
        elif roll < 0.35:
            fields["account"], fields["user"] = rng.choice(ACCOUNTS), rng.choice(USERS)
        if rng.random() < 0.15:
            fields["feature"] = rng.choice((*FEATURES, "unused"))
        core = None
        if rng.random() < 0.6:
            core = rng.sample((*FEATURES, "unused"), rng.randrange(0, 3))
        return ReportFilters(since=since, until=until, core=core, **fields)


# --------------------------------------------------------------------------- comparison


def mismatches(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Every difference between two report trees (floats to 1e-9, types checked)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = [] if list(expected) == list(actual) else [f"{path}: keys {list(actual)}"]
        for key in expected:
            out += mismatches(expected[key], actual.get(key), f"{path}.{key}")
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{path}: {expected!r} != {actual!r}"]
        out = []
        for i, (x, y) in enumerate(zip(expected, actual, strict=True)):
            out += mismatches(x, y, f"{path}[{i}]")
        return out
    if isinstance(expected, float) and isinstance(actual, float):
        same = abs(expected - actual) <= 1e-9 * max(1.0, abs(expected))
    else:
        same = expected == actual and type(expected) is type(actual)
    return [] if same else [f"{path}: expected {expected!r}, got {actual!r}"]


def compare(
    events: Sequence[Event],
    db: Path,
    filters: ReportFilters,
    today: dt.date,
    parallel: bool = False,
) -> None:
    """Assert the engine's report equals the oracle's, field by field."""
    oracle = Oracle(events, filters, today)
    try:
        expected = oracle.report()
    except QueryError:
        with pytest.raises(QueryError):
            build_report(db, filters, today=today, parallel=parallel)
        return
    actual = build_report(db, filters, today=today, parallel=parallel)
    problems = mismatches(expected, actual)
    assert not problems, f"{filters}:\n" + "\n".join(problems[:20])


# --------------------------------------------------------------------------- tests


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    base=st.sampled_from((BASE, BASE + 287)),  # March, and December: ISO week 2026-W53
    span=st.sampled_from((8, 20, 45)),
    parallel=st.booleans(),
)
def test_report_matches_design_oracle(
    tmp_path_factory: pytest.TempPathFactory, seed: int, base: int, span: int, parallel: bool
) -> None:
    """Random adversarial histories: every report field equals the brute-force oracle's."""
    draw = Draw(random.Random(seed), base, span)
    batches = draw.dataset()
    db = tmp_path_factory.mktemp("audit") / "usage.db"
    ingest_batches(db, batches)
    today = EPOCH + dt.timedelta(days=base + 25)
    events = [e for batch in batches for e in batch]
    for _ in range(3):
        compare(events, db, draw.filters(), today, parallel=parallel)


def _at(day: int, minute: int = 12 * 60) -> int:
    """µs timestamp ``day`` days after 2026-03-02 at ``minute`` past midnight UTC."""
    return (BASE + day) * DAY + minute * MINUTE


def _event(ts: int, kind: str, **fields: Any) -> Event:
    return Event(id=random.Random(next(_ids)).randbytes(16), ts=ts, kind=kind, **fields)  # type: ignore[arg-type]


def _boundary_history(returning: int, active_now: int, seats: int) -> list[Event]:
    """Ten users of ``a1`` active in the previous window [-10, 0); ``returning`` of them and
    ``active_now - returning`` newcomers active in the window [0, 10); ``seats`` seats."""
    events = [_event(_at(-10), "seats", account="a1", value=seats)]
    events += [_event(_at(-5), "login", user=f"p{i}", account="a1") for i in range(10)]
    events += [_event(_at(3), "feature", name="f", user=f"p{i}") for i in range(returning)]
    events += [
        _event(_at(9, 24 * 60 - 1), "feature", name="f", user=f"n{i}", account="a1")
        for i in range(active_now - returning)
    ]
    return events


@pytest.mark.parametrize(
    ("returning", "active_now", "seats", "flags"),
    [
        (7, 7, 20, ["churn_risk", "idle_seats"]),  # exactly 70% of them came back: at risk
        (8, 8, 20, ["idle_seats"]),  # 80% came back
        (7, 9, 10, ["churn_risk", "upsell", "idle_seats"]),  # 9 of 10 seats: exactly 0.9
        (8, 8, 10, ["idle_seats"]),  # 0.8 < 0.9; 8 active < 10 seats
        (8, 10, 10, ["upsell"]),  # all seats used: not idle
    ],
)
def test_flag_boundaries(
    tmp_path: Path, returning: int, active_now: int, seats: int, flags: list[str]
) -> None:
    """§5 flags at their exact thresholds (70% returning, 0.9 utilization, seats == active)."""
    events = _boundary_history(returning, active_now, seats)
    db = tmp_path / "usage.db"
    ingest_batches(db, [events])
    filters = ReportFilters(since=_date(BASE), until=_date(BASE + 10))
    compare(events, db, filters, dt.date(2026, 4, 1))
    [row] = build_report(db, filters)["accounts"]
    assert row["flags"] == flags


def test_segment_boundaries(tmp_path: Path) -> None:
    """8 of 10 days is daily, 4 of 10 frequent, 3 of 10 occasional (exact comparisons)."""
    events = [
        _event(_at(day, minute), "login", user=user)
        for user, days in (("d", 8), ("f", 4), ("o", 3))
        for day in range(days)
        for minute in (0, 24 * 60 - 1)  # midnight and the last minute of the day
    ]
    db = tmp_path / "usage.db"
    ingest_batches(db, [events])
    filters = ReportFilters(since=_date(BASE), until=_date(BASE + 10))
    compare(events, db, filters, dt.date(2026, 4, 1))
    segments = {row["user"]: row["segment"] for row in build_report(db, filters)["users"]}
    assert segments == {"d": "daily", "f": "frequent", "o": "occasional"}
