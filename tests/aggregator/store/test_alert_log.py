"""The alert log: only changes are recorded, once, even with two recorders at a time."""

from __future__ import annotations

import threading
from pathlib import Path

import anyio
import pytest

from uptake_aggregator.errors import StorageError
from uptake_aggregator.metrics.goals import is_alert_change
from uptake_aggregator.store import open_store
from uptake_aggregator.store.alerts import GoalReading


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "uptake.db"

    async def create() -> None:
        writer = await open_store(path).open_writer()
        await writer.close()

    anyio.run(create)
    return path


def _reading(status: str, subject: str = "acme", value: float | None = 0.5) -> GoalReading:
    return GoalReading("account.utilization >= 1", subject, status, value)


def test_only_changes_are_recorded(db: Path) -> None:
    log = open_store(db).alert_log()
    assert log.changes() == []  # no table yet
    first = log.record(1, [_reading("met"), _reading("unknown", "globex", None)], is_alert_change)
    assert first == []  # a first reading that is met or unknown is no news
    assert [c.after for c in log.record(2, [_reading("warning")], is_alert_change)] == ["warning"]
    assert log.record(3, [_reading("warning")], is_alert_change) == []
    recovered = log.record(4, [_reading("met", value=1.0)], is_alert_change)
    assert [(c.ts_us, c.before, c.after, c.value) for c in recovered] == [
        (4, "warning", "met", 1.0)
    ]
    assert [c.ts_us for c in log.changes()] == [2, 4]
    assert [c.ts_us for c in log.changes(since_us=3)] == [4]
    critical = log.record(5, [_reading("critical", "globex", 0.1)], is_alert_change)
    assert [(c.before, c.after) for c in critical] == [(None, "critical")]


def test_two_recorders_record_a_change_once(db: Path) -> None:
    results: list[int] = []
    barrier = threading.Barrier(8)

    def record() -> None:
        log = open_store(db).alert_log()
        barrier.wait()
        results.append(len(log.record(7, [_reading("critical")], is_alert_change)))

    threads = [threading.Thread(target=record) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0] * 7 + [1]
    assert len(open_store(db).alert_log().changes()) == 1


def test_no_database(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no database at"):
        open_store(tmp_path / "none.db").alert_log().changes()
