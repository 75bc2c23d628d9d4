"""Engagement figures (docs/metrics.md, *Engagement*): properties and edge cases.

The field-by-field equality with the brute-force oracles is in test_against_reference.py
and test_design_audit.py; here: the identities that tie the figures together, what holds
as users are observed longer, and hand-built edge cases.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings

from tests.aggregator.metrics.conftest import ingest_batches
from tests.support.datasets import BASE_DAY, DAY, Dataset, datasets
from tests.support.reference import reference_report
from uptake.protocol import Event, ReportFilters
from uptake_aggregator.errors import QueryError
from uptake_aggregator.metrics import build_report
from uptake_aggregator.metrics.report_schema import Report

EPOCH = dt.date(1970, 1, 1)
BASE = EPOCH + dt.timedelta(days=BASE_DAY)  # a Monday


def _date(offset: int) -> str:
    return (BASE + dt.timedelta(days=offset)).isoformat()


def _ev(offset_us: int, kind: str = "feature", **fields: Any) -> Event:
    number = _ev.counter = getattr(_ev, "counter", 0) + 1
    return Event(
        id=number.to_bytes(16, "big"),
        ts=BASE_DAY * DAY + offset_us,
        kind=kind,
        **fields,
    )


def _report(tmp_path: Path, events: list[Event], since: int, until: int, **more: Any) -> Any:
    db = tmp_path / "usage.db"
    if not db.exists():
        ingest_batches(db, [events])
    filters = ReportFilters(since=_date(since), until=_date(until), **more)
    report = build_report(db, filters)
    msgspec.convert(report, Report, strict=True)  # the schema holds every field
    return report


def _week_active(events: list[Event], users: set[str], monday: int, until: int) -> set[str]:
    return {
        e.user
        for e in events
        if e.user in users and monday <= e.ts // DAY < monday + 7 and e.ts // DAY < until
    }


@settings(max_examples=60, deadline=None)
@given(datasets())
def test_identities_between_figures(
    tmp_path_factory: pytest.TempPathFactory, data: Dataset
) -> None:
    """sum(l7) = wau, sum(l30) = mau; per week active = new + returning + resurrecting,
    dormant = active(W-1) - returning(W); weekly_active sums to the lifecycle's actives
    when every user has an account."""
    db = tmp_path_factory.mktemp("db") / "uptake.db"
    ingest_batches(db, data.batches)
    try:
        report = build_report(db, data.filters, today=data.today)
    except QueryError:
        return
    product, power = report["product"], report["power_users"]
    assert len(power["l7"]) == 7 and len(power["l30"]) == 30
    assert sum(power["l7"]) == product["wau"]
    assert sum(power["l30"]) == product["mau"]
    since = dt.date.fromisoformat(report["window"]["since"])
    until = (dt.date.fromisoformat(report["window"]["until"]) - EPOCH).days
    population = {row["user"] for row in report["users"]}
    unique = list({e.id: e for e in data.events}.values())
    monday = (since - EPOCH).days - since.weekday()
    assert report["lifecycle"], "the week of since is always listed"
    for index, week in enumerate(report["lifecycle"]):
        start = monday + 7 * index
        iso = (EPOCH + dt.timedelta(days=start)).isocalendar()
        assert week["week"] == f"{iso[0]}-W{iso[1]:02d}"
        now = _week_active(unique, population, start, until)
        before = _week_active(unique, population, start - 7, until)
        assert len(now) == week["new"] + week["returning"] + week["resurrecting"]
        assert week["dormant"] == len(before) - week["returning"]
    assert (
        (monday + 7 * len(report["lifecycle"]) - 7)
        <= until - 1
        < monday + 7 * len(report["lifecycle"])
    )
    for row in report["accounts"]:
        assert len(row["weekly_active"]) == len(report["lifecycle"])


@settings(max_examples=40, deadline=None)
@given(datasets())
def test_activation_outcomes_never_change_once_observable(
    tmp_path_factory: pytest.TempPathFactory, data: Dataset
) -> None:
    """With ``since`` fixed and ``until`` later: ``activated`` and each day's count of
    users reaching value never decrease (an observable outcome is final)."""
    db = tmp_path_factory.mktemp("db") / "uptake.db"
    ingest_batches(db, data.batches)
    unique = list({e.id: e for e in data.events}.values())
    since = BASE_DAY - 2
    firsts: dict[str, int] = {}
    for e in unique:
        if e.user is not None:
            firsts[e.user] = min(firsts.get(e.user, e.ts), e.ts)

    def figures(until: int) -> tuple[int, list[int]]:
        filters = ReportFilters(
            since=(EPOCH + dt.timedelta(days=since)).isoformat(),
            until=(EPOCH + dt.timedelta(days=until)).isoformat(),
            core=["export", "share"],
        )
        found = build_report(db, filters)["activation"]
        eligible = [
            sum(1 for ts in firsts.values() if since * DAY <= ts < until * DAY - k * DAY + 1)
            for k in range(1, 15)
        ]
        reached = [
            round(share * n) if share is not None else 0
            for share, n in zip(found["by_day"], eligible, strict=True)
        ]
        for share, n in zip(found["by_day"], eligible, strict=True):
            assert (share is None) == (n == 0)
        return found["activated"], reached

    earlier = figures(BASE_DAY + 10)
    for until in (BASE_DAY + 17, BASE_DAY + 40):
        later = figures(until)
        assert later[0] >= earlier[0]
        assert all(b >= a for a, b in zip(earlier[1], later[1], strict=True))
        earlier = later


def test_by_day_is_unchanged_for_users_all_observable_and_can_drop_otherwise(
    tmp_path: Path,
) -> None:
    hour = DAY // 24
    events = [
        _ev(0, "login", user="old"),  # day 0, activates after 1 day
        _ev(DAY, user="old", name="core"),
        _ev(9 * DAY + 12 * hour, "login", user="late"),  # day 9, never activates
    ]
    at_10 = _report(tmp_path, events, 0, 10, core=["core"])["activation"]
    # "late" has been seen 12 hours: it counts nowhere yet; "old" reached value by day 1.
    assert at_10["by_day"][:4] == [1.0, 1.0, 1.0, 1.0]
    at_12 = _report(tmp_path, events, 0, 12, core=["core"])["activation"]
    # Now "late" is observable at k = 1 and 2 and has not activated: those shares drop.
    assert at_12["by_day"][:4] == [0.5, 0.5, 1.0, 1.0]
    assert at_12["activated"] == at_10["activated"] == 1
    at_30 = _report(tmp_path, events, 0, 30, core=["core"])["activation"]
    at_40 = _report(tmp_path, events, 0, 40, core=["core"])["activation"]
    assert at_30["by_day"] == at_40["by_day"]  # both users observable for all 14 days


def test_activation_edges(tmp_path: Path) -> None:
    hour = DAY // 24
    events = [
        _ev(0, "login", user="exact"),
        _ev(14 * DAY, user="exact", name="b"),  # TTV exactly 14 days: activated
        _ev(hour, "login", user="late"),
        _ev(14 * DAY + hour + 1, user="late", name="a"),  # 14 days + 1 µs: not
        _ev(-DAY, "login", user="veteran"),  # first event before since: not new
        _ev(2 * DAY, user="veteran", name="a"),
        _ev(2 * DAY, "login", user="after"),
        _ev(40 * DAY, user="after", name="a"),  # core use after until: counts nothing
        _ev(3 * DAY, user="zero", name="a"),  # first event is the core use: TTV 0
    ]
    got = _report(tmp_path, events, 0, 30, core=["b", "a", "b"])["activation"]
    assert got["core"] == ["a", "b"]
    assert got["new_users"] == 4
    assert got["activated"] == 2
    assert got["rate"] == 0.5
    assert got["median_ttv_s"] == 7 * 86_400.0
    assert got["by_day"][0] == 1 / 4  # only "zero" by day 1
    assert got["by_day"][13] == 2 / 4
    none = _report(tmp_path, events, 0, 30)
    assert none["activation"] is None
    assert _report(tmp_path, events, 0, 30, core=[])["activation"] is None
    configured = build_report(
        tmp_path / "usage.db",
        ReportFilters(since=_date(0), until=_date(30)),
        core_features=["a", "b"],
    )
    assert configured["activation"] == got
    over = build_report(
        tmp_path / "usage.db",
        ReportFilters(since=_date(0), until=_date(30), core=["b"]),
        core_features=["a"],
    )
    assert over["activation"]["core"] == ["b"]  # --core wins over the configuration


def test_release_impact_spans(tmp_path: Path) -> None:
    hour = DAY // 24
    events = [
        # Before since: 3 users a day use "old" on days -3..-1; the release is on day 0.
        *[
            _ev(day * DAY + hour * n, user=f"u{n}", name="old")
            for day in (-3, -2, -1)
            for n in range(3)
        ],
        _ev(0, "release", name="2.0"),
        _ev(2 * hour, user="u0", name="new"),
        _ev(DAY + 2 * hour, user="u0", name="new"),
        _ev(DAY + 3 * hour, user="u1", name="new"),
        _ev(DAY + 3 * hour, user="u1", name="old"),
        _ev(2 * DAY + 5 * hour, "release", name="2.1"),  # at until - 1: one day after
    ]
    got = _report(tmp_path, events, 0, 3)
    first, last = got["releases"]
    assert first["after_days"] == 3
    assert first["before"] == {"since": _date(-3), "until": _date(0)}
    assert first["dau_before"] == 3.0
    assert first["dau_after"] == 1.0  # u0 on day 0, u0 and u1 on day 1, nobody on day 2
    assert first["features"] == [
        {"name": "old", "users_before": 3.0, "users_after": 1 / 3, "change": 1 / 9 - 1},
        {"name": "new", "users_before": 0.0, "users_after": 1.0, "change": None},
    ]
    assert last["after_days"] == 1
    assert last["before"] == {"since": _date(1), "until": _date(2)}
    assert last["dau_before"] == 2.0 and last["dau_after"] == 0.0
    only = _report(tmp_path, events, 0, 3, feature="new")["releases"][0]["features"]
    assert [row["name"] for row in only] == ["new"]
    narrowed = _report(tmp_path, events, 0, 3, user="u1")["releases"][0]
    assert narrowed["dau_before"] == 1.0
    assert [row["name"] for row in narrowed["features"]] == ["old", "new"]


def test_lifecycle_and_trend_over_a_window_too_long_to_pack(tmp_path: Path) -> None:
    """A 200-day window: weeks read in chunks; every week is listed, zeros included."""
    events = [
        _ev(-DAY, "login", user="w", account="acme"),  # the week before the first one
        _ev(0, "login", user="w", account="acme"),
        _ev(150 * DAY, "login", user="w"),  # resurrects in week 21
        _ev(160 * DAY, "login", user="n", account="acme"),  # new in week 22
        _ev(199 * DAY, "login", user="n"),
    ]
    got = _report(tmp_path, events, 0, 200)
    weeks = got["lifecycle"]
    assert len(weeks) == 29  # day 199 is in week 28 after the Monday of day 0
    assert weeks[0] == {
        "week": "2026-W10",
        "new": 0,
        "returning": 1,
        "resurrecting": 0,
        "dormant": 0,
        "pulse": None,
    }
    assert weeks[1]["dormant"] == 1 and weeks[1]["pulse"] == 0.0
    assert weeks[21]["resurrecting"] == 1 and weeks[22]["new"] == 1
    assert weeks[22]["dormant"] == 1 and weeks[22]["pulse"] == 1.0
    acme = got["accounts"][0]
    assert acme["weekly_active"] == [1 if index in {0, 21, 22, 28} else 0 for index in range(29)]
    expected = reference_report(events, ReportFilters(since=_date(0), until=_date(200)), BASE)
    assert got["lifecycle"] == expected["lifecycle"]
    assert got["accounts"] == expected["accounts"]


def test_an_empty_store_and_a_one_day_window(tmp_path: Path) -> None:
    got = _report(tmp_path, [], 3, 4, core=["x"])
    assert got["lifecycle"] == [
        {
            "week": "2026-W10",
            "new": 0,
            "returning": 0,
            "resurrecting": 0,
            "dormant": 0,
            "pulse": None,
        }
    ]
    assert got["power_users"] == {"l7": [0] * 7, "l30": [0] * 30}
    assert got["activation"] == {
        "core": ["x"],
        "new_users": 0,
        "activated": 0,
        "rate": None,
        "median_ttv_s": None,
        "by_day": [None] * 14,
    }
    assert got["releases"] == got["features"] == []


def test_feature_quadrants_at_the_medians(tmp_path: Path) -> None:
    events = [
        # wide: 2 users, 1 day each; deep: 1 user, 3 days; both: 2 users, 3 days each.
        *[_ev(d * DAY, user=u, name="both") for u in ("a", "b") for d in range(3)],
        _ev(0, user="a", name="wide"),
        _ev(0, user="b", name="wide"),
        *[_ev(d * DAY + 1, user="a", name="deep") for d in range(3)],
        _ev(DAY, user="c", name="rare"),
        _ev(DAY, name="anonymous"),  # no user: no frequency, no quadrant
    ]
    rows = {row["name"]: row for row in _report(tmp_path, events, 0, 5)["features"]}
    # adoption: both 2/3, wide 2/3, deep 1/3, rare 1/3 -> B = 1/2;
    # days: both 3, wide 1, deep 3, rare 1 -> F = 2.
    assert {name: row["quadrant"] for name, row in rows.items()} == {
        "both": "core",
        "wide": "one_off",
        "deep": "power",
        "rare": "improve",
        "anonymous": None,
    }
    assert rows["both"]["days_per_user"] == 3.0
    assert rows["anonymous"]["days_per_user"] is None
    # --feature lists one row, its quadrant still against every feature's medians.
    only = _report(tmp_path, events, 0, 5, feature="wide")["features"]
    assert [(row["name"], row["quadrant"]) for row in only] == [("wide", "one_off")]
