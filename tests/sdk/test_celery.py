"""A Celery prefork worker whose tasks call ``uptake.track``: every event stored once.

A plain Celery app (no integration), the filesystem broker, a real prefork worker whose
children are recycled (``--max-tasks-per-child``) and a real daemon. The worker process
imports the app, and so configures uptake and tracks, before it forks its children.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess, stored_ids

celery = pytest.importorskip("celery")

pytestmark = pytest.mark.slow

TASKS = 80

_APP = textwrap.dedent(
    """
    import os
    from celery import Celery
    import uptake

    BROKER = os.environ["TEST_BROKER_DIR"]
    app = Celery("tasks", broker="filesystem://")
    app.conf.broker_transport_options = {
        "data_folder_in": BROKER, "data_folder_out": BROKER, "polling_interval": 0.02,
    }
    app.conf.worker_prefetch_multiplier = 1
    app.conf.task_acks_late = False

    # Imported by the worker's main process, before it forks the pool: these calls are
    # buffered when the children fork and must be sent once, by the main process.
    uptake.configure(app="celery-worker")
    for number in range(20):
        uptake.track("worker_boot", n=number)

    @app.task(name="tasks.work")
    def work(number):
        uptake.track("task", n=number, pid=os.getpid())
        return number
    """
)

_PRODUCER = textwrap.dedent(
    """
    import os, sys
    from celery import Celery

    BROKER = os.environ["TEST_BROKER_DIR"]
    app = Celery("producer", broker="filesystem://")
    app.conf.broker_transport_options = {"data_folder_in": BROKER, "data_folder_out": BROKER}
    for number in range(int(sys.argv[1])):
        app.send_task("tasks.work", args=[number])
    """
)


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="upc", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def count_by_name(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(db)
    try:
        return dict(conn.execute("SELECT name, COUNT(*) FROM events GROUP BY name").fetchall())
    finally:
        conn.close()


def task_numbers(db: Path) -> list[int]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT props FROM events WHERE name = 'task'").fetchall()
    finally:
        conn.close()
    return sorted(json.loads(props)["n"] for (props,) in rows)


def test_prefork_worker_tasks_are_stored_once(workdir: Path) -> None:
    daemon = DaemonProcess(workdir).start()
    broker = workdir / "broker"
    broker.mkdir()
    (workdir / "tasks.py").write_text(_APP)
    env = {
        **daemon.env,
        "UPTAKE_SOCKET": str(daemon.socket),
        "UPTAKE_SPOOL_DIR": str(workdir / "spool"),
        "TEST_BROKER_DIR": str(broker),
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tasks",
            "worker",
            "--pool=prefork",
            "--concurrency=2",
            "--max-tasks-per-child=15",
            "--loglevel=WARNING",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        subprocess.run(
            [sys.executable, "-c", _PRODUCER, str(TASKS)], env=env, check=True, timeout=60
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and count_by_name(daemon.db).get("task", 0) < TASKS:
            if worker.poll() is not None:
                break
            time.sleep(0.2)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)  # warm shutdown: the pool finishes, then exits
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.communicate(timeout=30)
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
        daemon.stop()
    ids = stored_ids(daemon.db)
    assert len(ids) == len(set(ids))
    counts = count_by_name(daemon.db)
    assert task_numbers(daemon.db) == list(range(TASKS)), "each task's event exactly once"
    assert counts.get("worker_boot") == 20, "the main process's calls, once, not per child"
