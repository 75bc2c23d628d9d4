"""Celery: ``uptake.integrations.celery.install(app)``, on the producer and the worker.

Each task runs under the identity its producer had when it enqueued it: the
``(user, account, session)`` of the producer's context travels in the message headers
(header ``uptake``, set in ``before_task_publish``), is bound in ``task_prerun`` and the
worker's previous context is put back in ``task_postrun``, so the next task on the same
process or thread never inherits it. A task the producer enqueued anonymously runs
anonymously. Eager tasks (``task_always_eager``, ``apply()``) run in the producer's own
context and keep it.

Prefork workers: the SDK starts its buffer and sender thread afresh in every forked child
(``os.register_at_fork``); pool processes end with ``os._exit``, which skips ``atexit``,
and the SDK's own ``os._exit`` guard in forked children delivers (or spools) what the
child still holds first. A child still running at a warm shutdown may be killed by the
parent's second SIGTERM before it reaches ``os._exit``, so the integration also flushes
in ``worker_process_shutdown``, which billiard runs before that window. The worker's
main process flushes in ``worker_shutdown``, once its pool has stopped: its ``atexit``
handlers may never run, because billiard's pool finalizer (an exit handler too, run
first) can wait forever on a lock a dead pool process held.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import uptake

__all__ = ["HEADER", "install"]

_log: Final = logging.getLogger("uptake")

#: The message header carrying ``[user, account, session]``.
HEADER: Final = "uptake"
_PREVIOUS: Final = "_uptake_previous"
_NOBODY: Final = (None, None, None)


def install(app: Any = None) -> None:
    """Carry identities through ``app``'s tasks (the signals are connected once).

    ``app`` is accepted for symmetry with other extensions: Celery's task signals are
    process-wide, so one call covers every app of the process.
    """
    from celery import signals

    signals.before_task_publish.connect(_on_publish, weak=False, dispatch_uid="uptake.publish")
    signals.task_prerun.connect(_on_prerun, weak=False, dispatch_uid="uptake.prerun")
    signals.task_postrun.connect(_on_postrun, weak=False, dispatch_uid="uptake.postrun")
    # Both run before an exit path that may never reach the SDK's own exit handlers (see
    # the module docstring): pool processes in worker_process_shutdown, the main process
    # in worker_shutdown.
    for exiting, uid in (
        (signals.worker_process_shutdown, "uptake.process_shutdown"),
        (signals.worker_shutdown, "uptake.worker_shutdown"),
    ):
        exiting.connect(_flush_at_exit, weak=False, dispatch_uid=uid)


def _flush_at_exit(**kwargs: Any) -> None:
    """Deliver what this process tracked before billiard's exit (where it may die or hang).

    A pool process: billiard runs ``worker_process_shutdown`` first in its exit, then
    sends the parent DEATH and sleeps 1 s before ``os._exit``; at a warm shutdown the
    parent's answering SIGTERM kills it in that sleep, before the SDK's ``os._exit``
    guard. The main process: Celery sends ``worker_shutdown`` once the pool stopped;
    billiard's blocking-pool finalizer, an exit handler run before the SDK's, can wait
    forever on a lock a dead pool process held. Bounded (2 s); a no-op when nothing is
    buffered; never raises.
    """
    try:
        uptake.flush()
    except Exception as exc:  # never break the worker's exit
        _log.warning("uptake: flushing at a Celery worker's exit failed: %r", exc)


def _on_publish(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    identity = uptake.current_context()
    if headers is not None and identity != _NOBODY:
        headers[HEADER] = list(identity)


def _carried(request: Any) -> tuple[str | None, str | None, str | None]:
    found = getattr(request, HEADER, None)
    if found is None:
        headers = getattr(request, "headers", None)
        found = headers.get(HEADER) if isinstance(headers, dict) else None
    if found is None:
        return _NOBODY
    if (
        isinstance(found, (list, tuple))
        and len(found) == 3
        and all(part is None or isinstance(part, str) for part in found)
    ):
        return (found[0], found[1], found[2])
    _log.warning("uptake: ignoring a malformed %r task header: %r", HEADER, found)
    return _NOBODY


def _on_prerun(task: Any = None, **kwargs: Any) -> None:
    request = getattr(task, "request", None)
    if request is None or getattr(request, "is_eager", False):
        return  # eager: already in the producer's context
    setattr(request, _PREVIOUS, uptake.current_context())
    uptake.restore_context(_carried(request))


def _on_postrun(task: Any = None, **kwargs: Any) -> None:
    request = getattr(task, "request", None)
    previous = getattr(request, _PREVIOUS, None)
    if previous is not None:
        uptake.restore_context(previous)
