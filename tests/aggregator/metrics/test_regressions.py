"""The --fail-on rule grammar and the comparison against a baseline report."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uptake_aggregator.config import METRICS
from uptake_aggregator.errors import QueryError
from uptake_aggregator.metrics.regressions import Rule, compare, parse_rule

_PARTS = {"product": "product", "accounts": "account", "features": "feature"}


@st.composite
def rules(draw: st.DrawFn) -> tuple[str, Rule]:
    part = draw(st.sampled_from(sorted(_PARTS)))
    metric = draw(st.sampled_from(METRICS[_PARTS[part]]))
    name = (
        None
        if part == "product"
        else draw(st.none() | st.from_regex(r"[a-z0-9_ -]{1,12}", fullmatch=True))
    )
    op = draw(st.sampled_from(["<", "<=", ">", ">="]))
    number = draw(st.integers(-10_000, 10_000)) / 100
    relative = draw(st.booleans())
    bare = part == "product" and draw(st.booleans())
    path = metric if bare else f"{part}{'' if name is None else f'[{name}]'}.{metric}"
    text = f"{path}{op}{number:g}{'%' if relative else ''}"
    return text, Rule(text, part, name, metric, op, float(f"{number:g}"), relative)  # type: ignore[arg-type]


@given(rules())
def test_every_rule_of_the_grammar_parses_to_what_it_says(case: tuple[str, Rule]) -> None:
    text, expected = case
    assert parse_rule(text) == expected
    spaced = text.replace(expected.op, f" {expected.op} ", 1)
    assert parse_rule(f"  {spaced} ").threshold == expected.threshold


@given(st.text(max_size=30))
def test_anything_else_is_refused_with_the_grammar_or_parses(text: str) -> None:
    try:
        rule = parse_rule(text)
    except QueryError as exc:
        assert "--fail-on" in str(exc)
    else:
        assert rule.metric in METRICS[_PARTS[rule.part]]


def _report(stickiness: float | None, acme: float | None, globex: float = 0.5) -> dict[str, Any]:
    return {
        "product": {"stickiness": stickiness, "sessions": 10},
        "accounts": [
            {"account": "acme", "utilization": acme},
            {"account": "globex", "utilization": globex},
        ],
    }


def test_relative_and_absolute_changes() -> None:
    base, now = _report(0.5, 0.8), _report(0.4, 0.8, globex=0.2)
    [sticky] = compare(base, now, [parse_rule("stickiness<-10%")])
    assert sticky.change == pytest.approx(-20.0) and sticky.failed
    [sticky] = compare(base, now, [parse_rule("stickiness<-20.5%")])
    assert not sticky.failed
    every = compare(base, now, [parse_rule("accounts.utilization<=-0.3")])
    assert [(c.subject, c.failed) for c in every] == [("acme", False), ("globex", True)]
    [same] = compare(base, now, [parse_rule("product.sessions<0")])
    assert same.change == 0 and not same.failed


def test_what_cannot_be_compared_does_not_fail() -> None:
    notes = [
        c.note
        for c in compare(
            _report(0.0, None),
            _report(0.3, 0.5),
            [
                parse_rule("stickiness<-10%"),
                parse_rule("accounts[acme].utilization<0"),
                parse_rule("accounts[hooli].utilization<0"),
            ],
        )
    ]
    assert notes == [
        "the baseline is 0: no relative change",
        "no value in the baseline",
        "hooli is not in the baseline report",
    ]
    # An absolute change from 0 is fine.
    [absolute] = compare(_report(0.0, None), _report(0.3, 0.5), [parse_rule("stickiness>0.2")])
    assert absolute.failed
