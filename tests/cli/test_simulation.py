"""The demo's simulated SaaS: deterministic, shardable, and telling the story it promises."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, timedelta

import msgspec
import pytest

from uptake.protocol import EVENT_KINDS, MAX_EVENT_BYTES, Event
from uptake_cli.demo.simulation import (
    CHURNING_ACCOUNT,
    CORE_FEATURES,
    DROPPING_FEATURE,
    INTEGRATION_ACCOUNT,
    MIN_DAYS,
    RELEASE_VERSION,
    UPSELL_ACCOUNT,
    Scenario,
)

UNTIL = date(2026, 11, 23)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return Scenario(days=90, seed=7, until=UNTIL)


@pytest.fixture(scope="module")
def events(scenario: Scenario) -> list[Event]:
    return list(scenario.events())


@pytest.fixture(scope="module")
def three_weeks() -> list[Event]:
    """The events of a 21-day scenario with seed 3 (generated once for the module)."""
    return list(Scenario(days=21, seed=3, until=UNTIL).events())


def _active_users(scenario: Scenario, events: list[Event], first: int, last: int) -> Counter[str]:
    """Distinct active users per account over day indexes [first, last)."""
    account_of = {event.user: event.account for event in events if event.user and event.account}
    active: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event.user and first <= scenario.day_of(event.ts) < last:
            active[account_of[event.user]].add(event.user)
    return Counter({account: len(users) for account, users in active.items()})


def _seats(events: list[Event]) -> dict[str, int]:
    seats: dict[str, int] = {}
    for event in sorted(events, key=lambda event: event.ts):
        if event.kind == "seats":
            assert event.account is not None and event.value is not None
            seats[event.account] = event.value
    return seats


def test_same_seed_same_events_including_ids(three_weeks: list[Event]) -> None:
    first = three_weeks
    again = list(Scenario(days=21, seed=3, until=UNTIL).events())
    assert first == again
    other = list(Scenario(days=21, seed=4, until=UNTIL).events())
    assert {event.id for event in other}.isdisjoint(event.id for event in first)


@pytest.mark.parametrize("shards", [2, 3, 5])
def test_shards_partition_the_events(three_weeks: list[Event], shards: int) -> None:
    scenario = Scenario(days=21, seed=3, until=UNTIL)
    whole = three_weeks
    parts = [list(scenario.events(shard, shards)) for shard in range(shards)]
    assert sum(len(part) for part in parts) == len(whole)
    assert sorted(event.id for part in parts for event in part) == sorted(e.id for e in whole)
    assert {e.id: e for part in parts for e in part} == {e.id: e for e in whole}
    # Each user's events travel through exactly one host process.
    owners: dict[str, set[int]] = defaultdict(set)
    for shard, part in enumerate(parts):
        for event in part:
            if event.user:
                owners[event.user].add(shard)
    assert all(len(shards_of_user) == 1 for shards_of_user in owners.values())
    assert all(part for part in parts)


def test_a_shard_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="shard"):
        next(Scenario(days=MIN_DAYS, until=UNTIL).events(shard=2, shards=2))


def test_too_few_days_are_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        Scenario(days=MIN_DAYS - 1)


def test_events_are_valid_time_ordered_and_inside_the_days(
    scenario: Scenario, events: list[Event]
) -> None:
    assert 150_000 <= len(events) <= 300_000
    assert len({event.id for event in events}) == len(events)
    assert {event.kind for event in events} == EVENT_KINDS
    assert [event.ts for event in events] == sorted(event.ts for event in events)
    assert {scenario.day_of(events[0].ts), scenario.day_of(events[-1].ts)} == {0, 89}
    decoder = msgspec.msgpack.Decoder(Event)
    for event in events[::97]:
        encoded = msgspec.msgpack.encode(event)
        assert len(encoded) <= MAX_EVENT_BYTES
        assert decoder.decode(encoded) == event  # §2 limits hold


def test_population_matches_a_small_saas(scenario: Scenario, events: list[Event]) -> None:
    users = {event.user for event in events if event.user}
    assert 150 <= len(users) <= 250
    assert len(_seats(events)) == 12
    features = {event.name for event in events if event.kind == "feature"}
    assert 10 <= len(features) <= 14
    changes = Counter(event.account for event in events if event.kind == "seats")
    assert any(count > 1 for count in changes.values())  # some accounts buy more seats


def test_sessions_are_explicit_or_implicit(events: list[Event]) -> None:
    starts = {event.session for event in events if event.kind == "session_start"}
    ends = {event.session for event in events if event.kind == "session_end"}
    assert starts == ends and None not in starts
    assert all(event.value and event.value > 0 for event in events if event.kind == "session_end")
    without_session = [e for e in events if e.kind == "feature" and e.session is None]
    assert 0.05 < len(without_session) / sum(e.kind == "feature" for e in events) < 0.3


def test_weekdays_are_busier_than_weekends(scenario: Scenario, events: list[Event]) -> None:
    per_day: dict[int, set[str]] = defaultdict(set)
    for event in events:
        if event.user:
            per_day[scenario.day_of(event.ts)].add(event.user)
    weekday: list[int] = []
    weekend: list[int] = []
    for day in range(scenario.days):
        is_weekend = (scenario.since + timedelta(days=day)).weekday() >= 5
        (weekend if is_weekend else weekday).append(len(per_day[day]))
    assert sum(weekday) / len(weekday) > 2 * sum(weekend) / len(weekend)


def test_the_churning_account_falls_off(scenario: Scenario, events: list[Event]) -> None:
    window = scenario.window_days
    current = _active_users(scenario, events, scenario.days - window, scenario.days)
    previous = _active_users(scenario, events, scenario.days - 2 * window, scenario.days - window)
    # The §5 churn_risk rule: this window has at most 70% of the previous one's users.
    assert current[CHURNING_ACCOUNT] <= 0.7 * previous[CHURNING_ACCOUNT]
    steady = [account for account in previous if account != CHURNING_ACCOUNT]
    assert all(current[account] > 0.7 * previous[account] for account in steady)
    # And its activity keeps falling through the last weeks.
    weekly = [
        sum(
            1
            for event in events
            if event.account == CHURNING_ACCOUNT
            and event.kind == "feature"
            and start <= scenario.day_of(event.ts) < start + 7
        )
        for start in range(scenario.days - 28, scenario.days, 7)
    ]
    assert weekly == sorted(weekly, reverse=True) and weekly[-1] < weekly[0] / 2


def test_the_upsell_account_fills_its_seats(scenario: Scenario, events: list[Event]) -> None:
    current = _active_users(scenario, events, scenario.days - scenario.window_days, scenario.days)
    seats = _seats(events)
    assert current[UPSELL_ACCOUNT] / seats[UPSELL_ACCOUNT] >= 0.9
    others = [account for account in seats if account != UPSELL_ACCOUNT]
    assert all(current[account] / seats[account] < 0.9 for account in others)


def test_one_account_adopts_slack_part_way(scenario: Scenario, events: list[Event]) -> None:
    slack = [e for e in events if e.props and e.props.get("integration") == "slack"]
    assert slack and {event.account for event in slack} == {INTEGRATION_ACCOUNT}
    assert scenario.day_of(slack[0].ts) > scenario.days // 4
    integrations = {e.props["integration"] for e in events if e.props and "integration" in e.props}
    assert "slack" in integrations


def test_release_inside_the_window_then_a_feature_drops(
    scenario: Scenario, events: list[Event]
) -> None:
    releases = [event for event in events if event.kind == "release"]
    assert [event.name for event in releases] == [RELEASE_VERSION]
    since, until = scenario.window()
    release_day = scenario.since + timedelta(days=scenario.day_of(releases[0].ts))
    assert since <= release_day < until
    day = scenario.release_day
    uses = [scenario.day_of(e.ts) for e in events if e.name == DROPPING_FEATURE]
    before = sum(1 for d in uses if d < day) / day
    after = sum(1 for d in uses if d >= day) / (scenario.days - day)
    assert after < before / 3
    new_feature = [scenario.day_of(e.ts) for e in events if e.name == "ai_summary"]
    assert new_feature and min(new_feature) >= day


def test_the_report_window_leaves_a_previous_window() -> None:
    for days in (MIN_DAYS, 45, 90, 365):
        scenario = Scenario(days=days, until=UNTIL)
        since, until = scenario.window()
        assert until == UNTIL
        assert scenario.since <= since - (until - since)  # the previous window is simulated


def test_every_engagement_figure_has_a_story(
    scenario: Scenario, events: list[Event], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The demo's report (its window, its core features) shows each engagement figure."""
    from tests.aggregator.metrics.conftest import ingest_batches
    from uptake.protocol import ReportFilters
    from uptake_aggregator.metrics import build_report

    db = tmp_path_factory.mktemp("demo") / "uptake.db"
    ingest_batches(db, [events])
    since, until = scenario.window()
    report = build_report(
        db,
        ReportFilters(since=since.isoformat(), until=until.isoformat(), core=list(CORE_FEATURES)),
    )
    lifecycle = report["lifecycle"]
    assert sum(week["new"] for week in lifecycle) > 0
    assert sum(week["dormant"] for week in lifecycle) > 0
    assert sum(week["resurrecting"] for week in lifecycle) > 0
    assert any(week["pulse"] is not None for week in lifecycle)
    power = report["power_users"]
    assert power["l7"][0] > 0 and power["l7"][-1] > 0  # casual and daily users
    assert {f["quadrant"] for f in report["features"]} >= {"core", "improve"}
    (release,) = report["releases"]
    changes = {f["name"]: f["change"] for f in release["features"]}
    assert changes[DROPPING_FEATURE] < -0.5
    assert changes["ai_summary"] is None  # nobody used it before: it took off
    activation = report["activation"]
    assert activation["new_users"] >= 5
    assert 0 < activation["activated"] < activation["new_users"]
    assert any(share is not None and 0 < share < 1 for share in activation["by_day"])
    globex = next(row for row in report["accounts"] if row["account"] == CHURNING_ACCOUNT)
    assert globex["weekly_active"][-1] < globex["weekly_active"][0]
