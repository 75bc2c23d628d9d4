"""CSV export: §6 column names, one row per entry, nulls empty, any text survives."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.cli._reports import rename
from uptake_cli.render_csv import CSV_COLUMNS, render_csv


def _parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


@pytest.mark.parametrize("table", ["users", "accounts", "features", "dau"])
def test_each_table_has_its_section_6_columns_and_rows(
    sample_report: dict[str, Any], table: str
) -> None:
    text = render_csv(sample_report, table)  # type: ignore[arg-type]
    header = text.splitlines()[0].split(",")
    assert tuple(header) == CSV_COLUMNS[table]
    source = sample_report["product"]["dau"] if table == "dau" else sample_report[table]
    rows = _parse(text)
    assert len(rows) == len(source)
    for row, entry in zip(rows, source, strict=True):
        assert set(entry) == set(row)  # every §6 field, nothing else


def test_nulls_are_empty_cells_and_flags_join_with_semicolons(
    sample_report: dict[str, Any],
) -> None:
    rows = {row["account"]: row for row in _parse(render_csv(sample_report, "accounts"))}
    unknown = rows["Fox & Hound <EU>"]
    assert unknown["seats"] == unknown["utilization"] == unknown["adoption_rate"] == ""
    assert rows["globex"]["flags"] == "churn_risk;idle_seats"
    assert rows["umbrella"]["utilization"] == "1.0"


def test_numbers_keep_full_precision(sample_report: dict[str, Any]) -> None:
    rows = _parse(render_csv(sample_report, "features"))
    for row, feature in zip(rows, sample_report["features"], strict=True):
        assert float(row["adoption"]) == feature["adoption"]
        assert int(row["events"]) == feature["events"]


def test_unknown_table_is_refused(sample_report: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="unknown table"):
        render_csv(sample_report, "sessions")  # type: ignore[arg-type]


@given(name=st.text(max_size=30))
def test_any_name_round_trips(sample_report: dict[str, Any], name: str) -> None:
    report = rename(sample_report, name)
    rows = _parse(render_csv(report, "users"))
    assert [row["user"] for row in rows] == [user["user"] for user in report["users"]]
    assert [row["account"] for row in rows] == [user["account"] for user in report["users"]]


def test_engagement_tables(sample_report: dict[str, Any]) -> None:
    lifecycle = _parse(render_csv(sample_report, "lifecycle"))
    assert [row["week"] for row in lifecycle] == [w["week"] for w in sample_report["lifecycle"]]
    assert lifecycle[0]["pulse"] == ""  # null pulse: empty cell
    releases = _parse(render_csv(sample_report, "releases"))
    moved = sample_report["releases"][0]["features"]
    assert [row["feature"] for row in releases] == [f["name"] for f in moved]
    assert releases[0]["before_since"] == sample_report["releases"][0]["before"]["since"]
    power = _parse(render_csv(sample_report, "power_users"))
    assert [int(row["l30"]) for row in power] == sample_report["power_users"]["l30"]
    assert [int(row["l7"]) for row in power[:7]] == sample_report["power_users"]["l7"]
    assert {row["l7"] for row in power[7:]} == {""}
    (activation,) = _parse(render_csv(sample_report, "activation"))
    assert activation["core"] == "export_csv;share_link"
    assert activation["by_day_14"] == ""
    sample_report["activation"] = None
    assert render_csv(sample_report, "activation").splitlines() == [
        ",".join(CSV_COLUMNS["activation"])
    ]
