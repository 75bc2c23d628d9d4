"""Celery: tasks run under their producer's identity, through a real (in-thread) worker.

``celery.contrib.testing.worker.start_worker`` runs a real consumer on the in-memory
broker, so every task goes through publishing, the message headers and the worker's
signals. The prefork pool under a real ``celery worker`` process is in
``tests/sdk/integrations/test_servers.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker

import uptake
from uptake.integrations import celery as uptake_celery
from uptake.testing import UsageEvents

app = Celery("uptake-tests", broker="memory://", backend="cache+memory://")
app.conf.update(
    worker_hijack_root_logger=False,
    broker_transport_options={"polling_interval": 0.05},  # the memory broker polls
)
uptake_celery.install(app)


@app.task(name="uptake_tests.export")
def export(expected: str | None) -> str | None:
    uptake.track("export_task", expected=expected or "-")
    return uptake.current_context()[0]


@pytest.fixture(scope="module")
def worker() -> Iterator[None]:
    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
        yield


def test_tasks_carry_their_producers_identity(worker: None, usage_events: UsageEvents) -> None:
    results = []
    for user in ("ann", "bob", None, "cy"):
        uptake.restore_context((user, None if user is None else f"acct-{user}", None))
        results.append((user, export.delay(user)))
    uptake.restore_context((None, None, None))
    for user, result in results:
        assert result.get(timeout=20) == user  # the worker's context is put back after
    events = usage_events.find("export_task")
    assert len(events) == 4
    for event in events:
        assert event.props is not None
        expected = event.props["expected"]
        assert event.user == (None if expected == "-" else expected)
        assert event.account == (None if expected == "-" else f"acct-{expected}")


def test_eager_tasks_keep_the_callers_context(usage_events: UsageEvents) -> None:
    uptake.restore_context(("dee", "globex", None))
    try:
        assert export.apply(args=("dee",)).get() == "dee"
    finally:
        uptake.restore_context((None, None, None))
    usage_events.assert_tracked("export_task", user="dee", account="globex", count=1)
