"""The engine equals the brute-force reference, field by field, on generated datasets."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings

from tests.aggregator.metrics.conftest import ingest_batches
from tests.support.datasets import Dataset, datasets
from tests.support.reference import reference_report
from uptake_aggregator.errors import QueryError
from uptake_aggregator.metrics import build_report
from uptake_aggregator.metrics.report_schema import Report


def assert_same(engine: Any, reference: Any, where: str = "report") -> None:
    """Recursive equality; floats equal to 1e-9 relative, types and key order strict."""
    if isinstance(reference, float):
        assert isinstance(engine, float), f"{where}: {engine!r} is not a float"
        assert math.isclose(engine, reference, rel_tol=1e-9, abs_tol=1e-12), (
            f"{where}: engine {engine!r} != reference {reference!r}"
        )
    elif isinstance(reference, dict):
        assert isinstance(engine, dict), f"{where}: {engine!r}"
        assert list(engine) == list(reference), f"{where}: keys {list(engine)}"
        for key in reference:
            assert_same(engine[key], reference[key], f"{where}.{key}")
    elif isinstance(reference, list):
        assert isinstance(engine, list), f"{where}: {engine!r}"
        assert len(engine) == len(reference), f"{where}: {engine!r} != {reference!r}"
        for index, (mine, theirs) in enumerate(zip(engine, reference, strict=True)):
            assert_same(mine, theirs, f"{where}[{index}]")
    else:
        assert type(engine) is type(reference) and engine == reference, (
            f"{where}: engine {engine!r} != reference {reference!r}"
        )


@settings(max_examples=120)
@given(datasets())
def test_engine_matches_brute_force(
    tmp_path_factory: pytest.TempPathFactory, data: Dataset
) -> None:
    path = tmp_path_factory.mktemp("db") / "uptake.db"
    ingest_batches(path, data.batches)
    try:
        expected = reference_report(data.events, data.filters, data.today)
    except QueryError:
        with pytest.raises(QueryError):
            build_report(path, data.filters, today=data.today)
        return
    report = build_report(path, data.filters, today=data.today)
    assert_same(report, expected)
    typed = msgspec.to_builtins(msgspec.convert(report, Report, strict=True))
    assert typed.pop("goals") == []  # the schema's default: goals come from a config (CLI)
    assert_same(typed, report)


def test_empty_database_gives_an_empty_report(tmp_path: Path) -> None:
    from uptake.protocol import ReportFilters

    path = tmp_path / "uptake.db"
    ingest_batches(path, [])
    report = build_report(path, ReportFilters(since="2026-01-01", until="2026-01-03"))
    assert report["product"]["dau"] == [
        {"day": "2026-01-01", "users": 0},
        {"day": "2026-01-02", "users": 0},
    ]
    assert report["product"]["usage_rate"] is None
    assert report["product"]["stickiness"] == 0.0
    assert report["features"] == report["accounts"] == report["users"] == []
