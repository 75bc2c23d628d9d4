"""Seeded medium datasets (thousands of events, 25 users, 40 days): engine == reference.

Hypothesis datasets are tiny; these exercise the paths chosen by size (full-table scans,
the SQL feature path, batch-sized ingest) with realistic shapes.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import pytest

from tests.aggregator.metrics.conftest import ingest_batches
from tests.aggregator.metrics.test_against_reference import assert_same
from tests.support.reference import reference_report
from uptake.protocol import Event, ReportFilters, content_event_id
from uptake_aggregator.metrics import build_report
from uptake_aggregator.store.sqlite import report_source

DAY = 86_400_000_000
MINUTE = 60_000_000
BASE = (dt.date(2026, 1, 5) - dt.date(1970, 1, 1)).days
TODAY = dt.date(2026, 2, 20)
GAPS = [MINUTE, 10 * MINUTE, 29 * MINUTE, 30 * MINUTE, 31 * MINUTE, 180 * MINUTE]


def medium_dataset(seed: int) -> list[Event]:
    """Users with an activity level, sessions with and without ids, seats, integrations."""
    rng = random.Random(seed)
    users = [f"u{i}" for i in range(25)]
    accounts = [f"a{i}" for i in range(5)]
    rows: list[dict[str, object]] = []
    for account in accounts:
        for _ in range(rng.randint(0, 3)):
            ts = BASE * DAY + rng.randrange(40 * DAY)
            rows.append({"kind": "seats", "ts": ts, "account": account, "value": rng.randint(0, 8)})
    for user in users:
        home = rng.choice([*accounts, None])
        level = rng.random()
        for day in range(40):
            if rng.random() > level:
                continue
            ts = (BASE + day) * DAY + rng.randrange(DAY)
            for index in range(rng.randint(1, 3)):
                session = f"{user}-{day}-{index}" if rng.random() < 0.6 else None
                if session:
                    rows.append(
                        {"kind": "session_start", "ts": ts, "user": user, "session": session}
                    )
                for _ in range(rng.randint(0, 6)):
                    ts += rng.choice(GAPS)
                    kind = rng.choice(["feature", "feature", "login", "identify"])
                    rows.append(
                        {
                            "kind": kind,
                            "ts": ts,
                            "name": rng.choice(["f1", "f2", "f3", "f4"])
                            if kind == "feature"
                            else None,
                            "user": user,
                            "account": rng.choice([home, home, rng.choice(accounts)]),
                            "session": session,
                            "props": {"integration": rng.choice(["x", "y"])}
                            if rng.random() < 0.1
                            else None,
                        }
                    )
                if session and rng.random() < 0.7:
                    rows.append(
                        {"kind": "session_end", "ts": ts + MINUTE, "user": user, "session": session}
                    )
                ts += rng.randrange(40 * MINUTE, 300 * MINUTE)
    rows.append({"kind": "release", "ts": (BASE + 10) * DAY, "name": "1.0"})
    events = [
        Event(id=content_event_id(int(row["ts"]), str(i).encode()), **row)  # type: ignore[arg-type]
        for i, row in enumerate(rows)
    ]
    rng.shuffle(events)
    return events


FILTERS = [
    ReportFilters(since="2026-01-05", until="2026-02-14"),  # all the data
    ReportFilters(since="2026-01-20", until="2026-02-03"),  # inside: pairs straddle it
    ReportFilters(until="2026-02-01"),
    ReportFilters(since="2026-01-10", until="2026-01-25", account="a1"),
    ReportFilters(since="2026-01-05", until="2026-03-01", user="u3", feature="f2"),
    ReportFilters(),  # the default window, ending tomorrow (TODAY + 1)
    # Over 21 weeks: retention and activity take their query paths, not packed weeks.
    ReportFilters(since="2025-09-01", until="2026-02-20"),
]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_medium_dataset_matches_the_reference(tmp_path: Path, seed: int) -> None:
    events = medium_dataset(seed)
    path = tmp_path / "medium.db"
    ingest_batches(path, [events[i : i + 500] for i in range(0, len(events), 500)])
    for filters in FILTERS:
        assert_same(
            build_report(path, filters, today=TODAY),
            reference_report(events, filters, TODAY),
            f"seed {seed} {filters}",
        )


@pytest.fixture(scope="module")
def fallback_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Event]]:
    """Seed 4 ingested once: the fallback tests below only read it."""
    events = medium_dataset(4)
    db = tmp_path_factory.mktemp("fallback") / "medium.db"
    ingest_batches(db, [events])
    return db, events


@pytest.fixture(scope="module")
def fallback_references(fallback_dataset: tuple[Path, list[Event]]) -> list[dict[str, Any]]:
    """The reference report of seed 4 for each of FILTERS, computed once for every path."""
    _db, events = fallback_dataset
    return [reference_report(events, filters, TODAY) for filters in FILTERS]


@pytest.mark.parametrize(
    ("module", "limit", "path"),
    [
        # no room for per-pair checks: feature figures come from the window scan
        (report_source, "_MAX_STRADDLERS", "feature scan path"),
        # feature ids too high for bit masks: frozensets of ids
        (report_source, "_MAX_MASK_BITS", "feature id sets"),
        # windows too long for a per-user week bit mask: retention counts row by row
        (report_source, "_MASK_WEEKS", "retention row path"),
    ],
)
def test_size_chosen_fallback_paths_match_the_reference(
    monkeypatch: pytest.MonkeyPatch,
    fallback_dataset: tuple[Path, list[Event]],
    fallback_references: list[dict[str, Any]],
    module: object,
    limit: str,
    path: str,
) -> None:
    """Paths that only large data would take give the same report as the reference."""
    monkeypatch.setattr(module, limit, 0)
    db, _events = fallback_dataset
    for filters, reference in zip(FILTERS, fallback_references, strict=True):
        assert_same(build_report(db, filters, today=TODAY), reference, f"{path} {filters}")
