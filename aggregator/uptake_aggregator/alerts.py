"""Goal alerts: evaluate, record the changes, and deliver them to a command and a webhook.

``evaluate_and_record`` is the one evaluation both the daemon's schedule and
`usage check --record` run: goal rows of a report -> the store's alert log (which keeps
only changes, ``metrics.goals.is_alert_change``) -> the changes to announce.
``Notifier`` delivers them off the caller's thread: one thread per channel, so a hung
webhook delays neither the command nor the caller (the daemon's ingest and reports).

Each change is delivered as one JSON object::

    {"time": "2026-11-05T10:15:00Z", "goal": "account.utilization >= 0.7",
     "metric": "utilization", "scope": "account", "subject": "acme",
     "from": "met", "to": "critical", "value": 0.31, "target": 0.7,
     "direction": "at_least"}

The command gets it on stdin (no shell; killed after ``command_timeout``); the webhook
gets it as the body of a POST (``Content-Type: application/json``), retried with doubling
waits on a connection error, a timeout or a status other than 2xx. Failures are logged
(logger ``uptake_aggregator.alerts``) and dropped: alerts are best effort, the alert log
is the record.
"""

from __future__ import annotations

import json
import logging
import queue
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, Final

from uptake_aggregator.config import Alerts, Goal
from uptake_aggregator.metrics.goals import evaluate_goals, is_alert_change
from uptake_aggregator.store.alerts import AlertLog, GoalReading, StatusChange

__all__ = ["Notifier", "change_message", "evaluate_and_record", "iso_time"]

_log = logging.getLogger("uptake_aggregator.alerts")
_STOP: Final = object()


def iso_time(ts_us: int) -> str:
    """ISO-8601 UTC text of a µs timestamp, to the second: ``2026-11-05T10:15:00Z``."""
    moment = datetime.fromtimestamp(ts_us / 1_000_000, tz=timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def change_message(change: StatusChange, goal: Goal | None) -> dict[str, Any]:
    """The JSON object announcing ``change`` (see the module docstring)."""
    message: dict[str, Any] = {
        "time": iso_time(change.ts_us),
        "goal": change.goal,
        "metric": goal.metric if goal else None,
        "scope": goal.scope if goal else None,
        "subject": change.subject,
        "from": change.before,
        "to": change.after,
        "value": change.value,
        "target": goal.target if goal else None,
        "direction": goal.direction if goal else None,
    }
    return message


def evaluate_and_record(
    report: dict[str, Any], goals: Sequence[Goal], log: AlertLog, ts_us: int | None = None
) -> list[dict[str, Any]]:
    """Evaluate ``goals`` on ``report``, record the changes in ``log``, return their messages.

    Blocking (a short write transaction): the daemon runs it in a worker thread.
    """
    rows = evaluate_goals(report, goals)
    readings = [
        GoalReading(row["goal"], row["subject"], row["status"], row["value"]) for row in rows
    ]
    now = ts_us if ts_us is not None else time.time_ns() // 1000
    changes = log.record(now, readings, is_alert_change)
    by_key = {goal.key: goal for goal in goals}
    return [change_message(change, by_key.get(change.goal)) for change in changes]


class Notifier:
    """Delivers change messages to ``[alerts] command`` and ``webhook`` on threads of its own.

    ``send`` never blocks; ``close(timeout)`` lets queued deliveries finish (for at most
    ``timeout`` seconds each channel) and stops the threads. Example::

        notifier = Notifier(config.alerts)
        notifier.send(messages)
        notifier.close(timeout=30)
    """

    def __init__(self, alerts: Alerts) -> None:
        self._alerts = alerts
        self._channels: list[tuple[queue.SimpleQueue[object], threading.Thread]] = []
        if alerts.command:
            self._start("command", self._run_command)
        if alerts.webhook:
            self._start("webhook", self._post)
        self.delivered = 0
        self.failed = 0
        self._lock = threading.Lock()

    def _start(self, name: str, deliver: Any) -> None:
        inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        thread = threading.Thread(
            target=self._drain, args=(inbox, deliver), name=f"uptake-alerts-{name}", daemon=True
        )
        thread.start()
        self._channels.append((inbox, thread))

    @property
    def active(self) -> bool:
        """True when a command or webhook is configured."""
        return bool(self._channels)

    def send(self, messages: Sequence[dict[str, Any]]) -> None:
        """Queue ``messages`` for every channel; returns at once."""
        for message in messages:
            body = json.dumps(message).encode()
            for inbox, _ in self._channels:
                inbox.put(body)

    def close(self, timeout: float = 30.0) -> None:
        """Deliver what is queued (each channel for at most ``timeout`` s), then stop."""
        for inbox, _ in self._channels:
            inbox.put(_STOP)
        for _, thread in self._channels:
            thread.join(timeout)
            if thread.is_alive():
                _log.warning(
                    "alert delivery (%s) still busy after %g s; leaving it", thread.name, timeout
                )
        self._channels = []

    def _drain(self, inbox: queue.SimpleQueue[object], deliver: Any) -> None:
        while True:
            body = inbox.get()
            if body is _STOP:
                return
            assert isinstance(body, bytes)
            try:
                ok = bool(deliver(body))
            except Exception:  # a delivery bug must not end the channel
                _log.exception("alert delivery failed")
                ok = False
            with self._lock:
                if ok:
                    self.delivered += 1
                else:
                    self.failed += 1

    def _run_command(self, body: bytes) -> bool:
        command = self._alerts.command
        assert command is not None
        try:
            done = subprocess.run(
                list(command),
                input=body,
                capture_output=True,
                timeout=self._alerts.command_timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            _log.error(
                "alert command %s did not finish within %g s; killed",
                command[0],
                self._alerts.command_timeout_s,
            )
            return False
        except OSError as exc:
            _log.error("alert command %s could not run: %s", command[0], exc.strerror or exc)
            return False
        if done.returncode != 0:
            _log.error(
                "alert command %s exited %d: %s",
                command[0],
                done.returncode,
                done.stderr.decode(errors="replace").strip()[-500:],
            )
            return False
        return True

    def _post(self, body: bytes) -> bool:
        alerts = self._alerts
        assert alerts.webhook is not None
        attempts = alerts.webhook_retries + 1
        for attempt in range(attempts):
            request = urllib.request.Request(
                alerts.webhook,
                data=body,
                method="POST",
                headers={"Content-Type": "application/json", "User-Agent": "uptake-alerts"},
            )
            try:
                with urllib.request.urlopen(request, timeout=alerts.webhook_timeout_s) as answer:
                    answer.read()
                return True
            except (urllib.error.URLError, OSError, ValueError) as exc:
                if isinstance(exc, urllib.error.HTTPError):
                    reason: object = f"HTTP {exc.code} {exc.reason}"
                else:
                    reason = getattr(exc, "reason", None) or exc
                _log.warning(
                    "alert webhook %s failed (attempt %d of %d): %s",
                    alerts.webhook,
                    attempt + 1,
                    attempts,
                    reason,
                )
            if attempt + 1 < attempts:
                time.sleep(alerts.retry_wait_s * 2**attempt)
        _log.error("alert webhook %s: giving up after %d attempts", alerts.webhook, attempts)
        return False
