"""``build_report(parallel=True)``: part of the report in a forked child, same report.

The child's failures (an exception, a crash, another snapshot) must never change the
report: the parent then computes the part itself.
"""

from __future__ import annotations

import gc
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.aggregator.metrics.conftest import ingest_batches
from tests.aggregator.metrics.test_against_reference import assert_same
from tests.aggregator.metrics.test_medium_datasets import FILTERS, TODAY, medium_dataset
from tests.support.reference import reference_report
from uptake.protocol import ReportFilters
from uptake_aggregator.metrics import build_report, parallel, report
from uptake_aggregator.metrics.session_figures import SessionStats
from uptake_aggregator.store.sqlite.report_source import SqliteReportSource

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


@pytest.fixture(scope="module")
def medium_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("parallel") / "medium.db"
    events = medium_dataset(5)
    ingest_batches(path, [events[i : i + 700] for i in range(0, len(events), 700)])
    return path


@pytest.fixture
def forking(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Force the fork path (whatever the core count) and record the children started."""
    monkeypatch.setattr(report, "can_fork", lambda: True)
    started: list[int] = []
    real_start = parallel.ForkedPart.start.__func__  # type: ignore[attr-defined]

    def start(cls: type[parallel.ForkedPart[object]], *args: object) -> object:
        part = real_start(cls, *args)
        if part is not None:
            started.append(part._pid)
        return part

    monkeypatch.setattr(parallel.ForkedPart, "start", classmethod(start))
    yield started
    for pid in started:  # every child was reaped by the report
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def test_parallel_report_equals_the_serial_one_and_the_reference(
    medium_db: Path, forking: list[int]
) -> None:
    events = medium_dataset(5)
    for filters in FILTERS:
        forked = build_report(medium_db, filters, today=TODAY, parallel=True)
        assert forked == build_report(medium_db, filters, today=TODAY)
        assert_same(forked, reference_report(events, filters, TODAY), str(filters))
    assert len(forking) == len(FILTERS)


def _boom(*_: object) -> report._ChildPart:
    raise RuntimeError("the child failed")


def _crash(*_: object) -> report._ChildPart:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


def _stale(*_: object) -> report._ChildPart:
    """A child that read another snapshot, with figures that must not be used."""
    return report._ChildPart(-1, SessionStats(count=999_999))


@pytest.mark.parametrize("child", [_boom, _crash, _stale], ids=["raises", "killed", "stale"])
def test_a_failed_or_stale_child_changes_nothing(
    medium_db: Path, forking: list[int], monkeypatch: pytest.MonkeyPatch, child: object
) -> None:
    monkeypatch.setattr(report, "_forked_part", child)
    for filters in FILTERS[:2]:
        assert build_report(medium_db, filters, today=TODAY, parallel=True) == build_report(
            medium_db, filters, today=TODAY
        )
    assert forking


def test_no_fork_for_a_missing_database_or_with_threads(tmp_path: Path, forking: list[int]) -> None:
    from uptake_aggregator.errors import StorageError

    with pytest.raises(StorageError, match="no database"):
        build_report(tmp_path / "missing.db", FILTERS[0], parallel=True)
    assert not forking
    release = threading.Event()
    worker = threading.Thread(target=release.wait)
    worker.start()
    try:
        assert not parallel.can_fork()
    finally:
        release.set()
        worker.join()


def test_an_error_in_the_parent_reaps_the_child(
    medium_db: Path, forking: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(self: object) -> None:
        raise RuntimeError("the parent's part failed")

    monkeypatch.setattr(report._Counts, "run", fail)
    with pytest.raises(RuntimeError, match="parent's part failed"):
        build_report(medium_db, FILTERS[0], today=TODAY, parallel=True)
    assert len(forking) == 1  # and the fixture checks it was reaped
    assert gc.isenabled()


def test_the_collector_pauses_while_a_single_threaded_report_runs(
    medium_db: Path, forking: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    collecting: list[bool] = []
    real_run = report._Counts.run

    def run(self: report._Counts) -> None:
        collecting.append(gc.isenabled())
        real_run(self)

    monkeypatch.setattr(report._Counts, "run", run)
    assert gc.isenabled()
    build_report(medium_db, FILTERS[0], today=TODAY, parallel=True)
    build_report(medium_db, FILTERS[0], today=TODAY)  # serial: may share a threaded process
    assert gc.isenabled()
    assert collecting == [threading.active_count() > 1, True]


def test_a_commit_during_the_fork_means_one_consistent_snapshot(
    medium_db: Path, forking: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mark changes after the context was read: parent starts over, child is unused."""
    real_mark = SqliteReportSource.events_stored
    calls: list[int] = []

    def moving_mark(source: SqliteReportSource) -> int:
        calls.append(1)
        return real_mark(source) + len(calls)

    monkeypatch.setattr(SqliteReportSource, "events_stored", moving_mark)
    for filters in FILTERS[:2]:
        assert build_report(medium_db, filters, today=TODAY, parallel=True) == build_report(
            medium_db, filters, today=TODAY
        )


@pytest.mark.parametrize("until_day", [3, 4], ids=["data-after-until", "all-data-before-until"])
def test_an_early_forked_child_finds_the_known_users_itself(
    tmp_path: Path, forking: list[int], until_day: int
) -> None:
    """An unfiltered report forks before the known users are loaded: same sessions.

    A session whose only user-naming event comes after ``until`` counts nowhere; with
    every event before ``until``, every session's user is known.
    """
    from tests.aggregator.metrics.test_definitions import at, date, ev

    events = [
        ev(at(0, 9), "session_start", user="early", session="s1"),
        ev(at(0, 9, 40), "session_end", user="early", session="s1"),
        ev(at(1, 10), "feature", user="plain", name="export"),
        ev(at(2, 23, 50), "session_start", session="late"),
        ev(at(3, 0, 10), "feature", user="late-user", session="late", name="export"),
    ]
    path = tmp_path / "late.db"
    ingest_batches(path, [events])
    filters = ReportFilters(since=date(0), until=date(until_day))
    forked = build_report(path, filters, today=TODAY, parallel=True)
    assert forked == build_report(path, filters, today=TODAY)
    assert_same(forked, reference_report(events, filters, TODAY), str(filters))
    assert forked["product"]["sessions"] == (2 if until_day == 3 else 3)
    assert len(forking) == 1
