"""The Celery app a real prefork worker runs in the end-to-end tests.

The broker is the filesystem transport in ``SERVED_CELERY_BROKER`` (a tmp dir), so the
worker and the test (the producer) need no broker server. The worker's main process
tracks once at import, so a live uptake client exists before the pool forks.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import uuid
from pathlib import Path

from celery import Celery, signals

import uptake
from uptake.integrations.celery import install

__all__ = ["make_app"]


def make_app(folder: str) -> Celery:
    """A Celery app on the filesystem broker in ``folder``, with uptake installed."""
    app = Celery("served", broker="filesystem://")
    app.conf.update(
        broker_transport_options={
            "data_folder_in": folder,
            "data_folder_out": folder,
            "control_folder": str(Path(folder) / "control"),  # default: ./control
            "polling_interval": 0.05,
        },
        task_ignore_result=True,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )
    install(app)
    return app


app = make_app(os.environ.get("SERVED_CELERY_BROKER", "/nonexistent-broker"))


@app.task(name="served.export")
def export(expected: str) -> None:
    """Track a feature for whoever enqueued the task (``expected`` says who that was)."""
    uptake.track("celery_export", expected=expected, pid=os.getpid())
    # A mark per task run: the test waits for every task to have run before it stops the
    # worker (the filesystem broker drops a message once taken, so a task taken but not
    # started at a warm shutdown never runs, and tracks nothing for the SDK to deliver).
    done = Path(os.environ["SERVED_CELERY_BROKER"]) / "done"
    done.mkdir(exist_ok=True)
    (done / f"{os.getpid()}-{uuid.uuid4().hex}").touch()


if "SERVED_CELERY_BROKER" in os.environ:
    uptake.track("worker_booted", pid=os.getpid())

    @signals.worker_process_init.connect
    def _mark_ready(**kwargs: object) -> None:
        """A mark per pool process once it is set up (about to wait for its first job)."""
        ready = Path(os.environ["SERVED_CELERY_BROKER"]) / "ready"
        ready.mkdir(exist_ok=True)
        (ready / str(os.getpid())).touch()


if "SERVED_CELERY_TRACEBACKS" in os.environ:
    # Where a worker hangs at its shutdown: the test asks with SIGUSR2 (pool processes
    # inherit the handler but are never sent the signal).
    _tracebacks = open(os.environ["SERVED_CELERY_TRACEBACKS"], "w")  # noqa: SIM115 -- for the process's life
    faulthandler.register(signal.SIGUSR2, file=_tracebacks, all_threads=True)
