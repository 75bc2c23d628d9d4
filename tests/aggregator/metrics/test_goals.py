"""Goal status math (docs/metrics.md, "Goals and alerts"): boundaries, nulls, zeros, ``only``."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from uptake_aggregator.config import Goal
from uptake_aggregator.metrics.goals import evaluate_goals, goal_ratio, goal_status, worst_status

amounts = st.floats(min_value=0, max_value=1e9, allow_nan=False)
directions = st.sampled_from(["at_least", "at_most"])


def test_boundaries_at_least() -> None:
    assert goal_status(0.7, 0.7, "at_least") == "met"  # r exactly 1
    assert goal_status(0.9, 0.7, "at_least") == "met"
    assert goal_status(7, 10, "at_least") == "warning"  # r exactly 0.7
    assert goal_status(0.48, 0.7, "at_least") == "critical"
    assert goal_status(6.999999, 10, "at_least") == "critical"
    assert goal_status(None, 10, "at_least") == "unknown"


def test_boundaries_at_most() -> None:
    assert goal_status(5, 5, "at_most") == "met"  # r exactly 1
    assert goal_status(10, 7, "at_most") == "warning"  # r = 7 / 10 exactly 0.7
    assert goal_status(10.000001, 7, "at_most") == "critical"
    assert goal_status(None, 7, "at_most") == "unknown"


def test_zeros() -> None:
    assert goal_status(0, 0, "at_least") == "met"  # target 0: any value meets it
    assert goal_status(0, 5, "at_least") == "critical"
    assert goal_status(0, 5, "at_most") == "met"  # value 0: at most anything
    assert goal_status(0, 0, "at_most") == "met"
    assert goal_status(0.001, 0, "at_most") == "critical"  # r = 0
    assert goal_ratio(0, 5, "at_most") == float("inf")
    assert goal_ratio(0, 0, "at_least") == 1.0


@given(amounts, amounts, directions)
def test_status_follows_the_exact_ratio(value: float, target: float, direction: str) -> None:
    status = goal_status(value, target, direction)  # type: ignore[arg-type]
    good, bad = (value, target) if direction == "at_least" else (target, value)
    if good >= bad:
        assert status == "met"
    else:
        share = Fraction(good) / Fraction(bad)
        assert status == ("warning" if share >= Fraction(7, 10) else "critical")


@given(amounts, amounts, st.floats(min_value=1, max_value=1e3), directions)
def test_a_better_value_never_has_a_worse_status(
    value: float, target: float, factor: float, direction: str
) -> None:
    better = value * factor if direction == "at_least" else value / factor
    rank = ["critical", "warning", "met"]
    before = goal_status(value, target, direction)  # type: ignore[arg-type]
    after = goal_status(better, target, direction)  # type: ignore[arg-type]
    assert rank.index(after) >= rank.index(before)


def _report() -> dict[str, Any]:
    return {
        "product": {"mau": 80, "avg_session_s": None},
        "accounts": [
            {"account": "acme", "utilization": 0.9},
            {"account": "globex", "utilization": 0.4},
            {"account": "initech", "utilization": None},
        ],
        "features": [{"name": "export_csv", "users": 12}],
    }


def test_rows_per_goal_and_subject() -> None:
    goals = [
        Goal("mau", "product", 100),
        Goal("avg_session_s", "product", 60),
        Goal("utilization", "account", 0.7),
        Goal("utilization", "account", 0.7, only=("globex", "hooli")),
        Goal("users", "feature", 10, "at_most"),
    ]
    rows = evaluate_goals(_report(), goals)
    assert [(row["subject"], row["value"], row["status"]) for row in rows] == [
        ("product", 80, "warning"),
        ("product", None, "unknown"),
        ("acme", 0.9, "met"),
        ("globex", 0.4, "critical"),
        ("initech", None, "unknown"),
        ("globex", 0.4, "critical"),
        ("hooli", None, "unknown"),  # `only` names an account absent from the report
        ("export_csv", 12, "warning"),
    ]
    assert set(rows[0]) == {
        "metric", "scope", "subject", "value", "target", "status", "direction", "goal"
    }  # fmt: skip
    assert rows[0]["goal"] == "product.mau >= 100"


def test_worst_status() -> None:
    assert worst_status([]) == "met"
    assert worst_status(["met", "unknown"]) == "unknown"
    assert worst_status(["warning", "critical", "met"]) == "critical"
