"""Goal status: how far each KPI of a usage report is from its target (docs/metrics.md).

Pure functions over the report dict and the config's ``Goal`` values; no store, no I/O.
With r = value / target (``at_least``) or target / value (``at_most``): ``met`` when
r >= 1, ``warning`` when r >= 0.7, ``critical`` below, ``unknown`` when the value is null
or the subject is not in the report. The comparisons are exact (rational arithmetic on
the floats as given), so a value of exactly 70% of the target is a warning, never a
rounding accident. Edge cases, decided so that the natural reading holds:

- a value on the right side of the target is ``met`` whatever the zeros: ``at_least``
  with target 0 is always met; ``at_most`` with value 0 is always met;
- ``at_most`` with target 0 and a value above 0 has r = 0: ``critical``;
- ``only`` naming an account or feature the report does not list gives that subject a
  row with value null and status ``unknown`` (so a typo or a silent account shows).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from fractions import Fraction
from typing import Any, Final, Literal

from uptake_aggregator.config import Direction, Goal

__all__ = [
    "PRODUCT_SUBJECT",
    "STATUSES",
    "GoalStatus",
    "evaluate_goals",
    "goal_ratio",
    "goal_status",
    "is_alert_change",
    "worst_status",
]

GoalStatus = Literal["met", "warning", "critical", "unknown"]
#: Statuses from best to worst for alerting (unknown sorts between met and warning).
STATUSES: Final[tuple[GoalStatus, ...]] = ("met", "unknown", "warning", "critical")
#: The subject of a product-scope goal.
PRODUCT_SUBJECT: Final = "product"
_WARNING_SHARE: Final = Fraction(7, 10)


def goal_status(value: float | None, target: float, direction: Direction) -> GoalStatus:
    """The status of one value against its target (see the module docstring).

    >>> [goal_status(value, 10, "at_least") for value in (10, 7, 6.9)]
    ['met', 'warning', 'critical']
    >>> goal_status(0, 0, "at_most"), goal_status(1, 0, "at_most"), goal_status(None, 1, "at_most")
    ('met', 'critical', 'unknown')
    """
    if value is None:
        return "unknown"
    have, want = Fraction(value), Fraction(target)
    # r = good / bad side of the comparison; r >= 1 exactly when the value is on the
    # target's good side, which also settles every zero without a division.
    good, bad = (have, want) if direction == "at_least" else (want, have)
    if good >= bad:
        return "met"
    return "warning" if good >= _WARNING_SHARE * bad else "critical"


def goal_ratio(value: float | None, target: float, direction: Direction) -> float | None:
    """r of the module docstring as a float (None for a null value; inf when r is unbounded).

    >>> goal_ratio(35, 50, "at_least"), goal_ratio(4, 2, "at_most"), goal_ratio(0, 2, "at_most")
    (0.7, 0.5, inf)
    """
    if value is None:
        return None
    good, bad = (value, target) if direction == "at_least" else (target, value)
    if bad == 0:
        return math.inf if good > 0 else 1.0
    return good / bad


def _subjects(report: dict[str, Any], goal: Goal) -> list[tuple[str, dict[str, Any] | None]]:
    """(subject, its report row or None) for every subject the goal applies to."""
    if goal.scope == "product":
        return [(PRODUCT_SUBJECT, report.get("product"))]
    rows: list[dict[str, Any]]
    if goal.scope == "account":
        rows, name = report.get("accounts", []), "account"
    else:
        rows, name = report.get("features", []), "name"
    by_name = {row[name]: row for row in rows}
    if goal.only is None:
        return list(by_name.items())
    return [(subject, by_name.get(subject)) for subject in goal.only]


def evaluate_goals(report: dict[str, Any], goals: Sequence[Goal]) -> list[dict[str, Any]]:
    """The report's ``goals`` rows: one per goal and subject, in config order.

    Each row is ``{"metric", "scope", "subject", "value", "target", "status"}``, plus
    ``direction`` (rendering and alerts need it) and ``goal`` (``Goal.key``).

    >>> from uptake_aggregator.config import Goal
    >>> report = {"product": {"mau": 80}}
    >>> [row["status"] for row in evaluate_goals(report, [Goal("mau", "product", 100)])]
    ['warning']
    """
    rows: list[dict[str, Any]] = []
    for goal in goals:
        for subject, row in _subjects(report, goal):
            value = None if row is None else row.get(goal.metric)
            rows.append(
                {
                    "metric": goal.metric,
                    "scope": goal.scope,
                    "subject": subject,
                    "value": value,
                    "target": goal.target,
                    "status": goal_status(value, goal.target, goal.direction),
                    "direction": goal.direction,
                    "goal": goal.key,
                }
            )
    return rows


def worst_status(statuses: Iterable[str]) -> GoalStatus:
    """The worst of ``statuses`` (``met`` for none), in the order of ``STATUSES``.

    >>> worst_status(["met", "warning", "unknown"])
    'warning'
    """
    worst: GoalStatus = "met"
    for status in statuses:
        for known in STATUSES:
            if known == status and STATUSES.index(known) > STATUSES.index(worst):
                worst = known
    return worst


def is_alert_change(before: str | None, after: str) -> bool:
    """Whether a subject going from ``before`` (None: never recorded) to ``after`` is an alert.

    Any change of status is one, recoveries included, except the first reading of a
    subject when it is ``met`` or ``unknown``: a goal that starts out fine (or cannot be
    told yet) is not news. So a new goal that is already critical alerts at once.

    >>> [is_alert_change(None, "met"), is_alert_change(None, "critical")]
    [False, True]
    >>> is_alert_change("critical", "met")
    True
    """
    if before is None:
        return after not in ("met", "unknown")
    return before != after
