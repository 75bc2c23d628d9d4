"""Regression rules for a CI gate: a report compared with a saved baseline report.

A rule (`usage check --fail-on RULE`, docs/metrics.md) reads ``PATH OP CHANGE``:

- ``PATH``: ``METRIC`` or ``product.METRIC`` (the product), ``accounts.METRIC`` /
  ``features.METRIC`` (every account / feature in both reports), or
  ``accounts[NAME].METRIC`` / ``features[NAME].METRIC`` (one of them). ``METRIC`` is a
  numeric field of that part of the report (``config.METRICS``).
- ``OP``: ``<``, ``<=``, ``>`` or ``>=``.
- ``CHANGE``: a signed number; with ``%`` it is the relative change
  ``(current / baseline - 1) x 100``, without it the absolute change ``current - baseline``.

The rule fails when ``change OP CHANGE`` holds: ``stickiness<-10%`` fails when stickiness
fell by more than 10 %, ``accounts.utilization<-0.1`` when any account's utilization fell
by more than 0.1, ``product.sessions<0`` on any drop. A comparison that cannot be made
(a null on either side, a subject missing from one report, a relative change from a
baseline of 0) is reported as such and does not fail.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from uptake_aggregator.config import METRICS
from uptake_aggregator.errors import QueryError

__all__ = ["Comparison", "Rule", "compare", "parse_rule"]

_RULE: Final = re.compile(
    r"^\s*(?:(?P<part>product|accounts|features)(?:\[(?P<name>[^\]]+)\])?\.)?"
    r"(?P<metric>[a-z_][a-z0-9_]*)\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*(?P<percent>%)?\s*$"
)
_OPS: Final[dict[str, Callable[[float, float], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_SCOPE: Final = {"product": "product", "accounts": "account", "features": "feature"}
_KEY: Final = {"accounts": "account", "features": "name"}


@dataclass(frozen=True)
class Rule:
    """One parsed ``--fail-on`` rule; ``text`` is how it was written."""

    text: str
    part: Literal["product", "accounts", "features"]
    name: str | None
    metric: str
    op: str
    threshold: float
    relative: bool


@dataclass(frozen=True)
class Comparison:
    """A rule applied to one subject; ``change`` is None when it cannot be compared."""

    rule: Rule
    subject: str
    baseline: float | None
    current: float | None
    change: float | None
    failed: bool
    #: Why there is no change (empty when there is one).
    note: str = ""


def parse_rule(text: str) -> Rule:
    """Parse a ``--fail-on`` rule; ``QueryError`` says what is wrong and the grammar.

    >>> parse_rule("stickiness<-10%")
    Rule(text='stickiness<-10%', part='product', name=None, metric='stickiness', op='<', threshold=-10.0, relative=True)
    """  # noqa: E501 - a doctest line
    found = _RULE.match(text)
    if found is None:
        raise QueryError(
            f"--fail-on {text!r} is not a rule; write PATH OP CHANGE, e.g. "
            '"stickiness<-10%", "accounts.utilization<-0.1" or "accounts[acme].active_users<0" '
            "(OP: < <= > >=; CHANGE with % is relative, without it absolute)"
        )
    part = found.group("part") or "product"
    name = found.group("name")
    if part == "product" and name is not None:
        raise QueryError(f"--fail-on {text!r}: product takes no [NAME]; write product.METRIC")
    metric = found.group("metric")
    valid = METRICS[_SCOPE[part]]
    if metric not in valid:
        raise QueryError(
            f"--fail-on {text!r}: {metric!r} is not a numeric {_SCOPE[part]} metric; "
            f"valid: {', '.join(valid)}"
        )
    return Rule(
        text=text.strip(),
        part=part,  # type: ignore[arg-type]  # the pattern admits only the three parts
        name=name,
        metric=metric,
        op=found.group("op"),
        threshold=float(found.group("number")),
        relative=found.group("percent") is not None,
    )


def _rows(report: dict[str, Any], part: str) -> dict[str, dict[str, Any]]:
    if part == "product":
        product = report.get("product")
        return {"product": product} if isinstance(product, dict) else {}
    key = _KEY[part]
    return {row[key]: row for row in report.get(part, []) if isinstance(row, dict)}


def compare(
    baseline: dict[str, Any], current: dict[str, Any], rules: Sequence[Rule]
) -> list[Comparison]:
    """Apply ``rules`` to the subjects of ``current`` against ``baseline``, in rule order."""
    results: list[Comparison] = []
    for rule in rules:
        old_rows, new_rows = _rows(baseline, rule.part), _rows(current, rule.part)
        if rule.name is not None:
            subjects = [rule.name]
        elif rule.part == "product":
            subjects = ["product"]
        else:
            subjects = [subject for subject in new_rows if subject in old_rows]
        for subject in subjects:
            results.append(
                _compare_one(rule, subject, old_rows.get(subject), new_rows.get(subject))
            )
    return results


def _compare_one(
    rule: Rule, subject: str, old: dict[str, Any] | None, new: dict[str, Any] | None
) -> Comparison:
    before = None if old is None else old.get(rule.metric)
    after = None if new is None else new.get(rule.metric)
    note = ""
    if old is None or new is None:
        note = f"{subject} is not in the {'baseline' if old is None else 'current'} report"
    elif before is None or after is None:
        note = "no value in the " + ("baseline" if before is None else "current report")
    elif rule.relative and before == 0:
        note = "the baseline is 0: no relative change"
    if note:
        return Comparison(rule, subject, before, after, None, False, note)
    assert before is not None and after is not None
    change = (after / before - 1) * 100 if rule.relative else after - before
    return Comparison(rule, subject, before, after, change, _OPS[rule.op](change, rule.threshold))
