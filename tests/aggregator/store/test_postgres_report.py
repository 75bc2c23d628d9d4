"""The report from the central PostgreSQL equals the report of one SQLite holding it all.

Differential: each hypothesis event set is ingested into one SQLite database whole, and
forwarded into the central store by one to three hosts (``CentralWriter``, as the
daemons do), each host holding some of the batches, so events reach the centre from
several hosts and some twice. The two reports must be equal field for field, for every
filter (user, account, feature, core features), window (empty ones included) and session
computation (in the report's process, or in its forked child).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.aggregator.metrics.conftest import ingest_batches
from tests.aggregator.metrics.test_against_reference import assert_same
from tests.support.datasets import BASE_DAY, DAY, Dataset, datasets
from tests.support.postgres import PostgresCluster, forward_from_hosts, truncate_central
from uptake.protocol import Event, ReportFilters, content_event_id
from uptake_aggregator.errors import QueryError
from uptake_aggregator.metrics import build_report
from uptake_aggregator.store.postgres.connection import migrate


@pytest.fixture(scope="module")
def central(postgres: PostgresCluster) -> Iterator[str]:
    """One migrated central database for the module; each example truncates it."""
    url = postgres.new_database()
    migrate(url)
    return url


def both_reports(
    tmp_path: Path,
    central: str,
    batches: Sequence[Sequence[Event]],
    filters: ReportFilters,
    today: dt.date,
    *,
    hosts: int = 2,
    parallel: bool = False,
) -> tuple[dict[str, object] | None, dict[str, object] | None]:
    """(SQLite report, central report) of the same events; None for both on a QueryError."""
    path = tmp_path / "union.db"
    path.unlink(missing_ok=True)
    ingest_batches(path, batches)
    truncate_central(central)
    forward_from_hosts(central, batches, hosts)
    try:
        expected = build_report(path, filters, today=today, parallel=parallel)
    except QueryError:
        with pytest.raises(QueryError):
            build_report(central, filters, today=today, parallel=parallel)
        return None, None
    return expected, build_report(central, filters, today=today, parallel=parallel)


@settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    print_blob=True,
)
@given(data=datasets(), hosts=st.integers(1, 3), parallel=st.booleans())
def test_central_report_equals_the_sqlite_report(
    tmp_path_factory: pytest.TempPathFactory,
    central: str,
    data: Dataset,
    hosts: int,
    parallel: bool,
) -> None:
    tmp_path = tmp_path_factory.mktemp("diff")
    expected, found = both_reports(
        tmp_path, central, data.batches, data.filters, data.today, hosts=hosts, parallel=parallel
    )
    assert_same(found, expected)


def _event(index: int, ts: int, kind: str, **fields: object) -> Event:
    return msgspec.structs.replace(
        Event(id=bytes(16), ts=ts, kind=kind, **fields),  # type: ignore[arg-type]
        id=content_event_id(ts, str(index).encode()),
    )


def test_a_session_takes_its_user_from_a_later_event(tmp_path: Path, central: str) -> None:
    # The session_start names no one; the session's later events name u1 (a session's
    # user is that of its earliest event naming one): filtered to u1 and export, both
    # stores count u1's session, and the session-less events near it belong to it.
    day = (BASE_DAY + 3) * DAY
    events = [
        _event(0, day + 10, "session_start", session="x1"),
        _event(1, day + 20, "feature", name="export", user="u1", session="x1", account="a1"),
        _event(2, day + 60_000_000, "feature", name="share", user="u1", session="x1"),
        _event(3, day + 90_000_000, "login", user="u1"),
        _event(4, day + 4 * 3600 * 10**6, "feature", name="export", user="u1"),
        _event(5, day + 30, "feature", name="export", user="u2", account="a2"),
    ]
    filters = ReportFilters(user="u1", feature="export", core=["export"])
    today = dt.date(2026, 3, 20)
    expected, found = both_reports(tmp_path, central, [events[:3], events[3:]], filters, today)
    assert expected is not None
    assert_same(found, expected)
    assert found is not None and found["product"]["sessions"] == 2  # type: ignore[index]


def test_empty_windows_and_an_empty_store(tmp_path: Path, central: str) -> None:
    day = (BASE_DAY + 3) * DAY
    events = [_event(0, day, "login", user="u1", account="a1")]
    for batches in ([], [events]):
        for filters in (
            ReportFilters(since="2026-01-01", until="2026-01-03"),
            ReportFilters(since="2026-04-01", until="2026-04-09", account=None),
            ReportFilters(),
        ):
            expected, found = both_reports(tmp_path, central, batches, filters, dt.date(2026, 3, 9))
            assert expected is not None
            assert_same(found, expected)
