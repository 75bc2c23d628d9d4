"""Example-based checks of each metric definition of docs/metrics.md."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import statistics
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.aggregator.metrics.conftest import ingest_batches
from tests.aggregator.metrics.test_against_reference import assert_same
from tests.support.reference import reference_report
from uptake.protocol import Event, ReportFilters, content_event_id
from uptake_aggregator.errors import QueryError, StorageError
from uptake_aggregator.metrics import build_report
from uptake_aggregator.metrics import session_figures as sessions
from uptake_aggregator.metrics.health import band, health_score

DAY = 86_400_000_000
HOUR = 3_600_000_000
MINUTE = 60_000_000
#: 2026-03-02, a Monday.
D0 = (dt.date(2026, 3, 2) - dt.date(1970, 1, 1)).days
_serial = itertools.count()


def at(day: int, hour: float = 12, minute: float = 0) -> int:
    """µs timestamp of ``day`` days after 2026-03-02, at hour:minute UTC."""
    return (D0 + day) * DAY + int(hour * HOUR) + int(minute * MINUTE)


def ev(ts: int, kind: str = "feature", **fields: Any) -> Event:
    event_id = content_event_id(ts, str(next(_serial)).encode())
    return Event(id=event_id, ts=ts, kind=kind, **fields)  # type: ignore[arg-type]


def date(day: int) -> str:
    return (dt.date(2026, 3, 2) + dt.timedelta(days=day)).isoformat()


Report = Callable[..., dict[str, Any]]


@pytest.fixture
def report(tmp_path: Path) -> Report:
    """Ingest events, then build the report for [since, until) given as day offsets."""

    def run(events: list[Event], since: int, until: int, **filters: str) -> dict[str, Any]:
        path = tmp_path / f"{next(_serial)}.db"
        ingest_batches(path, [events])
        return build_report(path, ReportFilters(since=date(since), until=date(until), **filters))

    return run


def by(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {row[key]: row for row in rows}


def test_default_window_is_the_30_days_before_tomorrow(tmp_path: Path) -> None:
    path = tmp_path / "u.db"
    ingest_batches(path, [[ev(at(0), "login", user="u1")]])
    got = build_report(path, ReportFilters(), today=dt.date(2026, 3, 2))
    assert got["window"] == {"since": "2026-02-01", "until": "2026-03-03"}
    assert len(got["product"]["dau"]) == 30
    assert got["product"]["dau"][-1] == {"day": "2026-03-02", "users": 1}
    only_until = build_report(path, ReportFilters(until="2026-03-10"))
    assert only_until["window"]["since"] == "2026-02-08"


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        ("2026-13-01", None, "bad --since date"),
        ("2026-3-1", None, "bad --since date"),
        (None, "yesterday", "bad --until date"),
        ("2026-03-05", "2026-03-05", "empty window"),
        ("2026-03-06", "2026-03-05", "empty window"),
    ],
)
def test_bad_dates_are_query_errors(
    tmp_path: Path, since: str | None, until: str | None, message: str
) -> None:
    path = tmp_path / "u.db"
    ingest_batches(path, [])
    with pytest.raises(QueryError, match=message):
        build_report(path, ReportFilters(since=since, until=until))


def test_missing_database_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no database"):
        build_report(tmp_path / "absent.db", ReportFilters())


def test_unknown_account_is_a_query_error(report: Report) -> None:
    with pytest.raises(QueryError, match="unknown account 'nope'"):
        report([ev(at(0), "login", user="u1", account="acme")], 0, 7, account="nope")


def test_activity_dau_wau_mau_stickiness_and_usage_rate(report: Report) -> None:
    events = [
        ev(at(0, 0), "login", user="u1"),  # exactly midnight: day 0
        ev(at(0, 23.99), user="u2", name="f"),
        ev(at(1), "logout", user="u1"),
        ev(at(2, 0) - 1, user="u3", name="f"),  # the last µs of day 1
        ev(at(-20), "identify", user="u4"),  # before the window, within MAU
        ev(at(3), "login", user="u1"),  # on until: outside the window
    ]
    product = report(events, 0, 3)["product"]
    assert product["dau"] == [
        {"day": date(0), "users": 2},
        {"day": date(1), "users": 2},
        {"day": date(2), "users": 0},
    ]
    assert product["active_users"] == 3
    assert product["known_users"] == 4  # u4 is known; the day-3 login is after until
    assert product["wau"] == 3
    assert product["mau"] == 4  # trailing 30 days reach back before since
    assert product["stickiness"] == pytest.approx((4 / 3) / 3)
    assert product["usage_rate"] == pytest.approx(3 / 4)
    assert product["logins"] == 1


def test_users_lists_inactive_known_users_with_zeros(report: Report) -> None:
    events = [
        ev(at(-3), "login", user="idle", account="acme"),
        *[ev(at(day), "login", user="busy", account="acme") for day in range(8)],
        ev(at(1), "login", user="some"),
        *[ev(at(day), "feature", user="mid", name="f") for day in range(4)],
    ]
    users = by(report(events, 0, 10)["users"], "user")
    assert list(users) == ["busy", "idle", "mid", "some"]
    assert users["idle"] == {
        "user": "idle",
        "account": "acme",
        "active_days": 0,
        "logins": 0,
        "sessions": 0,  # its one implicit session starts before since
        "avg_session_s": None,
        "features": 0,
        "segment": "inactive",
        "last_seen": "2026-02-27T12:00:00+00:00",
    }
    assert users["busy"]["segment"] == "daily"  # 8 of 10 days = 80%
    assert users["mid"]["segment"] == "frequent"  # 4 of 10 = 40%
    assert users["some"]["segment"] == "occasional"
    assert users["some"]["account"] is None
    assert users["busy"]["logins"] == 8


def test_explicit_sessions(report: Report) -> None:
    events = [
        ev(at(0, 23, 50), "session_start", user="u1", session="s1"),
        ev(at(1, 0, 20), "session_end", user="u1", session="s1", value=1),  # spans midnight
        ev(at(1, 9), "session_start", user="u2", session="s2"),
        ev(at(1, 9, 5), "feature", user="u2", session="s2", name="f"),  # no end: last event
        ev(at(-1, 23, 59), "session_start", user="u3", session="s3"),  # starts before since
        ev(at(0, 1), "session_end", user="u3", session="s3"),
        ev(at(1, 10), "feature", user="u4", session="s4", name="f"),  # no start: no session
    ]
    got = report(events, 0, 2)
    product, users = got["product"], by(got["users"], "user")
    assert product["sessions"] == 2
    assert product["avg_session_s"] == pytest.approx((30 * 60 + 5 * 60) / 2)
    assert product["median_session_s"] == pytest.approx((30 * 60 + 5 * 60) / 2)
    assert users["u1"]["sessions"] == 1
    assert users["u1"]["avg_session_s"] == pytest.approx(1800.0)
    assert users["u3"]["sessions"] == 0
    assert users["u4"]["sessions"] == 0
    # the session counts on its start day's window only
    assert report(events, 1, 2)["product"]["sessions"] == 1


def test_implicit_sessions_split_at_gaps_over_30_minutes(report: Report) -> None:
    thirty = 30 * MINUTE
    t0 = at(0, 10)
    events = [
        ev(t0, "login", user="u1"),
        ev(t0 + thirty, user="u1", name="f"),  # exactly 30 min: same session
        ev(t0 + 2 * thirty + 1, user="u1", name="f"),  # 30 min + 1 µs: a new session
        ev(t0 + 2 * thirty + 1 + 10 * MINUTE, user="u1", name="f"),
    ]
    users = by(report(events, 0, 1)["users"], "user")
    assert users["u1"]["sessions"] == 2
    assert users["u1"]["avg_session_s"] == pytest.approx((1800 + 600) / 2)


def visit(t0: int, user: str = "u1", session: str = "s1", minutes: float = 20) -> list[Event]:
    """``with uptake.session(): uptake.track(...)`` from ``t0`` for ``minutes``."""
    end = t0 + int(minutes * MINUTE)
    return [
        ev(t0, "session_start", user=user, session=session),
        ev(t0 + 5 * MINUTE, user=user, session=session, name="f"),
        ev(end, "session_end", user=user, session=session, value=end - t0),
    ]


def test_the_readme_visit_is_one_session(report: Report) -> None:
    """login(); with session(): ...; logout() -- one visit, one session of its own length."""
    t0 = at(0, 10)
    events = [
        ev(t0 - 2 * MINUTE, "login", user="u1"),
        *visit(t0, minutes=40),
        # 72 minutes after the login, 30 after the session's end: still the visit's
        ev(t0 + 70 * MINUTE, "logout", user="u1"),
    ]
    got = report(events, 0, 1)
    assert got["product"]["sessions"] == 1
    assert got["product"]["avg_session_s"] == pytest.approx(40 * 60)
    assert got["product"]["logins"] == 1
    assert by(got["users"], "user")["u1"]["sessions"] == 1


@pytest.mark.parametrize(("minutes", "sessions"), [(29, 1), (30, 1), (31, 2)])
def test_a_login_before_a_session_joins_it_within_30_minutes(
    report: Report, minutes: int, sessions: int
) -> None:
    t0 = at(0, 10)
    events = [ev(t0 - minutes * MINUTE, "login", user="u1"), *visit(t0)]
    product = report(events, 0, 1)["product"]
    assert product["sessions"] == sessions
    # the login alone is a 0 s session when it stands apart
    assert product["avg_session_s"] == pytest.approx(20 * 60 / sessions)


def test_a_session_without_an_end_holds_events_to_30_minutes_after_its_last(
    report: Report,
) -> None:
    t0 = at(0, 10)
    events = [
        ev(t0, "session_start", user="u1", session="s1"),
        ev(t0 + 10 * MINUTE, user="u1", session="s1", name="f"),  # its end: no session_end
        ev(t0 + 40 * MINUTE, "logout", user="u1"),  # 30 min after: the session's
        ev(t0 + 41 * MINUTE + 1, user="u1", name="f"),  # past the margin: implicit
    ]
    users = by(report(events, 0, 1)["users"], "user")
    assert users["u1"]["sessions"] == 2
    assert users["u1"]["avg_session_s"] == pytest.approx(10 * 60 / 2)


def test_margins_belong_to_their_own_user_only(report: Report) -> None:
    t0 = at(0, 10)
    events = [ev(t0 - MINUTE, "login", user="u2"), *visit(t0, user="u1")]
    users = by(report(events, 0, 1)["users"], "user")
    assert (users["u1"]["sessions"], users["u2"]["sessions"]) == (1, 1)


def test_interleaved_explicit_and_implicit_traffic_of_one_user(report: Report) -> None:
    """A session's margin cuts a 30-minute bucket: the events outside it stay implicit."""
    t0 = at(0, 10)  # a bucket boundary: the bucket [10:00, 10:30) holds three events
    events = [
        ev(t0, user="u1", name="api"),
        ev(t0 + 5 * MINUTE, user="u1", name="api"),  # implicit 10:00-10:05
        ev(t0 + 15 * MINUTE, "login", user="u1"),  # inside the margin from 10:10
        *visit(t0 + 40 * MINUTE, minutes=20),  # 10:40-11:00, margin to 11:30
        ev(t0 + 85 * MINUTE, user="u1", name="api"),  # 11:25: the session's
        ev(t0 + 95 * MINUTE, user="u1", name="api"),  # 11:35: implicit, alone
        ev(t0 + 100 * MINUTE, user="u1", name="api"),  # 11:40: with 11:35
        *visit(t0 + 180 * MINUTE, session="s2", minutes=10),  # 13:00, margin from 12:30
        ev(t0 + 160 * MINUTE, user="u1", name="api"),  # 12:40: the second session's
    ]
    got = report(events, 0, 1)
    assert got["product"]["sessions"] == 4
    durations = sorted([5 * 60, 20 * 60, 5 * 60, 10 * 60])
    assert got["product"]["avg_session_s"] == pytest.approx(sum(durations) / 4)
    assert got["product"]["median_session_s"] == pytest.approx((5 * 60 + 10 * 60) / 2)


def test_a_margin_across_since_takes_its_events_out_of_the_window(report: Report) -> None:
    """A session before ``since`` still holds the session-less events of its margin."""
    events = [
        *visit(at(0, 23, 30), minutes=20),  # 23:30-23:50 on day 0, margin to 00:20
        ev(at(1, 0, 10), "logout", user="u1"),
        ev(at(1, 0, 25), user="u1", name="f"),  # past the margin: an implicit session
    ]
    assert report(events, 1, 2)["product"]["sessions"] == 1
    assert report(events, 0, 2)["product"]["sessions"] == 2


def test_features_usage_adoption_and_account_attribution(report: Report) -> None:
    events = [
        ev(at(0), "login", user="u1", account="old"),
        ev(at(1), user="u1", name="export", account="new"),  # u1's account becomes 'new'
        ev(at(1), user="u1", name="export"),
        ev(at(1), user="u2", name="search", account="old"),
        ev(at(2), name="export", account="anon"),  # no user: counts for its account
        ev(at(2), "login", user="u3"),
    ]
    got = report(events, 0, 5)
    features = got["features"]
    assert [f["name"] for f in features] == ["export", "search"]
    export, search = features
    assert export == {
        "name": "export",
        "events": 3,
        "users": 1,
        "accounts": 2,
        "adoption": 1 / 3,
        "days_per_user": 1.0,
        "quadrant": "core",  # both features at both medians: "at least" includes equality
    }
    assert search["accounts"] == 1
    accounts = by(got["accounts"], "account")
    assert accounts["new"]["breadth"] == 1
    assert accounts["old"]["breadth"] == 1  # u2's search; u1 now belongs to 'new'
    assert accounts["anon"]["breadth"] == 1
    assert accounts["old"]["active_users"] == 1
    assert by(got["users"], "user")["u1"]["features"] == 1
    assert report(events, 0, 5, feature="search")["features"] == [search]


def test_seats_utilization_adoption_and_flags(report: Report) -> None:
    seats = [
        ev(at(-5), "seats", account="acme", value=4),
        ev(at(2), "seats", account="acme", value=2),  # from day 2 on: 2 seats
        ev(at(0), "seats", account="zero", value=0),
    ]
    logins = [ev(at(day), "login", user=u, account="acme") for day in range(4) for u in ("a", "b")]
    events = [
        *seats,
        *logins,
        ev(at(1), "login", user="z", account="zero"),
        ev(at(1), "login", user="n", account="noseats"),
    ]
    accounts = by(report(events, 0, 4)["accounts"], "account")
    acme = accounts["acme"]
    assert acme["seats"] == 2
    assert acme["utilization"] == 1.0
    # days 0-1: 2 logins / 4 seats; days 2-3: 2 / 2
    assert acme["adoption_rate"] == pytest.approx((0.5 + 0.5 + 1 + 1) / 4)
    assert "upsell" in acme["flags"]
    assert "idle_seats" not in acme["flags"]
    assert accounts["zero"]["seats"] == 0
    assert accounts["zero"]["utilization"] is None  # zero seats: no ratio
    assert accounts["zero"]["adoption_rate"] is None
    noseats = accounts["noseats"]
    assert noseats["seats"] is None
    assert noseats["utilization"] is None
    assert noseats["adoption_rate"] is None
    assert noseats["flags"] == []
    # a window before the seat change: 4 seats, 2 active users
    early = by(report(events, 0, 2)["accounts"], "account")["acme"]
    assert early["seats"] == 4
    assert early["utilization"] == 0.5
    assert early["flags"] == ["idle_seats"]


def test_utilization_may_exceed_one(report: Report) -> None:
    events = [ev(at(0), "seats", account="acme", value=1)] + [
        ev(at(1), "login", user=u, account="acme") for u in ("a", "b", "c")
    ]
    assert report(events, 0, 3)["accounts"][0]["utilization"] == 3.0


def test_growth_and_churn_risk(report: Report) -> None:
    previous = [ev(at(day), "login", user=u, account="acme") for day in (0, 1) for u in "abcd"]
    current = [ev(at(3), "login", user=u, account="acme") for u in "ab"]
    current += [ev(at(3), "login", user="e", account="acme")]
    acme = report(previous + current, 2, 4)["accounts"][0]
    assert acme["growth"] == pytest.approx(3 / 4)
    assert "churn_risk" in acme["flags"]  # 2 of 4 previous users came back: 50% <= 70%
    fresh = report(current, 2, 4)["accounts"][0]
    assert fresh["growth"] is None  # nobody in the previous window
    assert fresh["flags"] == []


def test_integrations_count_distinct_values_per_account(report: Report) -> None:
    events = [
        ev(at(0), user="u1", account="acme", name="f", props={"integration": "slack"}),
        ev(at(1), user="u1", name="g", props={"integration": "slack"}),
        ev(at(1), "identify", user="u2", account="acme", props={"integration": "jira"}),
        ev(at(9), user="u2", account="acme", name="f", props={"integration": "github"}),
    ]
    assert report(events, 0, 5)["accounts"][0]["integrations"] == 2


def test_retention_cohorts_by_iso_week(report: Report) -> None:
    events = [
        ev(at(0), "login", user="a"),  # cohort 2026-W10 (Monday 2026-03-02)
        ev(at(3), "login", user="b"),
        ev(at(8), "login", user="a"),  # week 1
        ev(at(15), "login", user="b"),  # week 2
        ev(at(9), "login", user="c"),  # cohort 2026-W11
        ev(at(-1), "login", user="old"),  # first seen before the window
        ev(at(0), "login", user="old"),
    ]
    retention = report(events, 0, 16)["retention"]
    assert retention == [
        {"cohort": "2026-W10", "size": 2, "weeks": [1.0, 0.5, 0.5]},
        {"cohort": "2026-W11", "size": 1, "weeks": [1.0, 0.0]},
    ]
    # until 2026-03-10: week 1 of W10 is partial (only days before until count: a's
    # login on 03-10 is outside), and there is no week 2
    assert report(events, 0, 8)["retention"][0]["weeks"] == [1.0, 0.0]
    assert report(events, 0, 9)["retention"][0]["weeks"] == [1.0, 0.5]
    # a window starting mid-week leaves that week's cohort out
    assert [c["cohort"] for c in report(events, 1, 16)["retention"]] == ["2026-W11"]


def test_releases_in_the_window(report: Report) -> None:
    events = [
        ev(at(1, 9), "release", name="2.0"),
        ev(at(1, 8), "release", name="1.9"),
        ev(at(7), "release", name="3.0"),
    ]
    releases = report(events, 0, 5)["releases"]
    assert [(r["day"], r["version"]) for r in releases] == [(date(1), "1.9"), (date(1), "2.0")]


def test_user_and_account_filters_narrow_lists_and_product(report: Report) -> None:
    events = [
        ev(at(0), "login", user="a1", account="acme"),
        ev(at(0), user="a1", account="acme", name="export"),
        ev(at(1), "login", user="a2", account="acme"),
        ev(at(1), "login", user="g1", account="globex"),
        ev(at(1), user="g1", account="globex", name="search"),
    ]
    acme = report(events, 0, 3, account="acme")
    assert [u["user"] for u in acme["users"]] == ["a1", "a2"]
    assert [a["account"] for a in acme["accounts"]] == ["acme"]
    assert acme["product"]["known_users"] == 2
    assert acme["product"]["dau"][1]["users"] == 1
    assert [f["name"] for f in acme["features"]] == ["export"]
    one = report(events, 0, 3, user="g1")
    assert [u["user"] for u in one["users"]] == ["g1"]
    assert [a["account"] for a in one["accounts"]] == ["globex"]
    assert one["accounts"][0]["active_users"] == 1
    assert report(events, 0, 3, user="nobody")["users"] == []


def test_health_score_weights_and_bands() -> None:
    assert health_score(utilization=1.0, stickiness=1.0, growth=1.0, breadth=1.0) == 100
    assert health_score(utilization=None, stickiness=0.0, growth=None, breadth=None) == 0
    # capped inputs: utilization 2.0 counts as 1.0, growth 3.0 as 1.0
    assert health_score(utilization=2.0, stickiness=0.0, growth=3.0, breadth=0.0) == 55
    # unknown inputs re-weighted: stickiness 0.5 alone gives 50
    assert health_score(utilization=None, stickiness=0.5, growth=None, breadth=None) == 50
    assert (band(70), band(69), band(40), band(39)) == ("green", "yellow", "yellow", "red")
    # exact halves round up (in floats both land just below the half and rounded down)
    assert health_score(utilization=None, stickiness=Fraction(3, 20), growth=1, breadth=1) == 58
    exact_39_5 = health_score(
        utilization=Fraction(1, 8), stickiness=Fraction(2, 5), growth=1, breadth=Fraction(1, 2)
    )
    assert (exact_39_5, band(exact_39_5)) == (40, "yellow")


_RATIOS = st.fractions(min_value=0, max_value=3, max_denominator=10_000)


@given(
    st.none() | _RATIOS,
    _RATIOS,
    st.none() | _RATIOS,
    st.none() | st.fractions(0, 1, max_denominator=1000),
)
def test_health_score_equals_the_plain_fraction_formula(
    utilization: Fraction | None,
    stickiness: Fraction,
    growth: Fraction | None,
    breadth: Fraction | None,
) -> None:
    weights = {
        "u": Fraction(2, 5),
        "s": Fraction(3, 10),
        "g": Fraction(3, 20),
        "b": Fraction(3, 20),
    }
    inputs = {
        "u": None if utilization is None else min(utilization, Fraction(1)),
        "s": stickiness,
        "g": None if growth is None else min(growth, Fraction(1)),
        "b": breadth,
    }
    known = {name: value for name, value in inputs.items() if value is not None}
    total = sum(weights[name] for name in known)
    exact = sum(weights[name] * value for name, value in known.items()) / total * 100
    expected = min(100, max(0, math.floor(exact + Fraction(1, 2))))
    score = health_score(
        utilization=utilization, stickiness=stickiness, growth=growth, breadth=breadth
    )
    assert score == expected


@given(st.lists(st.integers(0, 10**7).map(float), min_size=1, max_size=300), st.booleans())
def test_median_selection_is_exact(
    monkeypatch: pytest.MonkeyPatch, durations: list[float], tight: bool
) -> None:
    """With tiny thresholds the sampled path runs on small lists; tight margins miss."""
    monkeypatch.setattr(sessions, "_SELECT_FROM", 4)
    monkeypatch.setattr(sessions, "_SAMPLE", 4)
    monkeypatch.setattr(sessions, "_MARGIN", 0 if tight else 2)
    assert sessions.median(list(durations)) == statistics.median(durations)


def test_median_of_many_durations() -> None:
    durations = [float((i * 7919) % 100_003) for i in range(60_001)]
    assert sessions.median(durations) == statistics.median(durations)
    assert sessions.median(durations[:-1]) == statistics.median(durations[:-1])


def test_ids_holding_separators_and_sessions_of_unknown_users(tmp_path: Path) -> None:
    """Odd ids take the engine's slow paths; they must give the reference's numbers."""
    odd_user, odd_feature = "a\x1eb,c", "f\x1eg,h"
    events = [
        ev(at(0, 9), "session_start", user=odd_user, session="s1"),
        ev(at(0, 9, 10), "feature", user=odd_user, session="s1", name=odd_feature),
        ev(at(0, 9, 20), "session_end", user=odd_user, session="s1"),
        ev(at(1), "feature", user="plain", name="export", account="acme"),
        ev(at(1, 10), "feature", user=odd_user, name=odd_feature, account="a\x1ecme"),
        # a session whose only user-naming event comes after until: counts nowhere
        ev(at(2, 23, 50), "session_start", session="late"),
        ev(at(3, 0, 10), "feature", user="late-user", session="late", name="export"),
    ]
    path = tmp_path / "odd.db"
    ingest_batches(path, [events])
    filters = ReportFilters(since=date(0), until=date(3))
    expected = reference_report(events, filters, dt.date(2026, 3, 4))
    assert_same(build_report(path, filters), expected)
    assert by(expected["users"], "user")[odd_user]["sessions"] == 2  # one explicit, one implicit
    assert expected["product"]["sessions"] == 3


def test_empty_ids_name_no_one(report: Report) -> None:
    """A user, account or session id that is the empty string counts as absent."""

    def history(empty: str | None) -> list[Event]:
        return [
            ev(at(0, 9), "login", user="u1", account="acme"),
            ev(at(0, 9, 1), "feature", name="search", user="u1", session=empty),
            ev(at(0, 10), "feature", name="export", user=empty, account="acme"),
            ev(at(0, 11), "feature", name="export", user=empty, account=empty, session=empty),
            ev(at(1, 9), "seats", account=empty, value=3),
            ev(at(1, 9), "feature", name="sync", user="u1", account=empty,
               props={"integration": "slack"}),
        ]  # fmt: skip

    blank, absent = report(history(""), 0, 3), report(history(None), 0, 3)
    assert blank == absent
    assert [row["user"] for row in blank["users"]] == ["u1"]
    assert [row["account"] for row in blank["accounts"]] == ["acme"]
