"""The feature rollups added for reports: order-independent and equal to a recount."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.aggregator.metrics.conftest import ingest_batches
from tests.aggregator.store.test_storage import small_events
from uptake.protocol import Event
from uptake_aggregator.store.sqlite.storage import connect_readonly

DAY = 86_400_000_000
TABLES = ("user_feature_named", "feature_totals")


def snapshot(path: Path) -> dict[str, list[Any]]:
    conn = connect_readonly(path)
    try:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall()) for t in TABLES}
    finally:
        conn.close()


@given(
    st.lists(small_events(), min_size=1, max_size=40),
    st.randoms(use_true_random=False),
    st.integers(min_value=1, max_value=7),
)
def test_feature_rollups_ignore_split_order_and_resend(
    tmp_path_factory: pytest.TempPathFactory, events: list[Event], rng: Any, split: int
) -> None:
    base = tmp_path_factory.mktemp("db")
    once, messy = base / "once.db", base / "messy.db"
    ingest_batches(once, [events])
    resent = events + rng.sample(events, k=len(events) // 2)
    rng.shuffle(resent)
    ingest_batches(messy, [resent[i : i + split] for i in range(0, len(resent), split)])
    tables = snapshot(messy)
    assert tables == snapshot(once)

    features = [e for e in events if e.kind == "feature" and e.name is not None]
    totals = Counter(
        (e.ts // DAY, e.name, "" if e.user is not None else e.account or "") for e in features
    )
    assert tables["feature_totals"] == sorted((*k, n) for k, n in totals.items())
    spans: dict[tuple[str, str], tuple[int, int]] = {}
    for e in features:
        if e.user is not None and e.name is not None:
            day = e.ts // DAY
            first, last = spans.get((e.user, e.name), (day, day))
            spans[(e.user, e.name)] = (min(first, day), max(last, day))
    assert tables["user_feature_named"] == sorted((*k, *v) for k, v in spans.items())


def test_more_features_than_one_mask_word(tmp_path: Path) -> None:
    """Feature ids past 63 (bit 63 makes SQLite's word sum negative) count like the rest."""
    from tests.aggregator.metrics.test_against_reference import assert_same
    from tests.aggregator.metrics.test_definitions import at, date, ev
    from tests.support.reference import reference_report
    from uptake.protocol import ReportFilters
    from uptake_aggregator.metrics import build_report

    names = [f"feature-{index:03d}" for index in range(140)]
    events = [
        ev(at(day, 9, index % 60), "feature", user=f"u{user}", account=f"a{user % 2}", name=name)
        for user in range(5)
        for day in range(3)
        for index, name in enumerate(names)
        if (index + day) % (user + 1) == 0
    ]
    events.append(ev(at(1, 10), "feature", account="a1", name="only-anonymous"))
    path = tmp_path / "wide.db"
    ingest_batches(path, [events[i : i + 97] for i in range(0, len(events), 97)])
    today = dt.date(2026, 3, 4)
    for filters in (
        ReportFilters(since=date(0), until=date(3)),
        ReportFilters(since=date(1), until=date(2)),  # every pair straddles it
        ReportFilters(since=date(0), until=date(3), account="a0"),
    ):
        report = build_report(path, filters, today=today)
        assert_same(report, reference_report(events, filters, today), str(filters))
    full = build_report(path, ReportFilters(since=date(0), until=date(3)), today=today)
    assert {row["user"]: row["features"] for row in full["users"]}["u0"] == 140
    assert len(full["features"]) == 141
