"""CSV export of one table of a usage report (`usage report --format csv --table ...`).

Columns are the report's field names (docs/metrics.md), in schema order, so a spreadsheet
or pandas sees the same names as the JSON. Nulls are empty cells; lists (an account's ``flags``
and ``weekly_active``, activation's ``core``) are joined with ``;``. The engagement
tables (``lifecycle``, ``releases``, ``power_users``, ``activation``) are flattened by
``render_engagement``. Numbers are written as Python prints them (full precision,
``.`` decimal point).
"""

from __future__ import annotations

import csv
import io
from typing import Any, Final, Literal

import msgspec

from uptake_aggregator.metrics.report_schema import (
    AccountRow,
    DauPoint,
    FeatureRow,
    GoalRow,
    UserRow,
)
from uptake_cli._present import Report
from uptake_cli.render_engagement import ENGAGEMENT_CSV, engagement_csv_rows

__all__ = ["CSV_COLUMNS", "CsvTable", "render_csv"]

CsvTable = Literal[
    "users",
    "accounts",
    "features",
    "dau",
    "lifecycle",
    "releases",
    "power_users",
    "activation",
    "goals",
]

#: The columns of each exportable table, in report order (from ``metrics.report_schema``).
CSV_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    table: tuple(field.name for field in msgspec.structs.fields(row))
    for table, row in (
        ("users", UserRow),
        ("accounts", AccountRow),
        ("features", FeatureRow),
        ("dau", DauPoint),
        ("goals", GoalRow),
    )
} | ENGAGEMENT_CSV


def _cell(value: Any) -> str | int | float:
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(str(item) for item in value)
    if isinstance(value, (int, float, str)):
        return value
    return str(value)


def _rows(report: Report, table: str) -> list[dict[str, Any]]:
    if table in ENGAGEMENT_CSV:
        return engagement_csv_rows(report, table)
    if table == "dau":
        rows: list[dict[str, Any]] = report["product"]["dau"]
        return rows
    return list(report.get(table, []))


def render_csv(report: Report, table: CsvTable) -> str:
    """Return ``table`` of ``report`` as CSV text with a header row (``\\r\\n`` line ends).

    >>> render_csv({"product": {"dau": [{"day": "2026-11-01", "users": 3}]}}, "dau")
    'day,users\\r\\n2026-11-01,3\\r\\n'
    """
    if table not in CSV_COLUMNS:
        raise ValueError(f"unknown table {table!r}; choose one of {', '.join(CSV_COLUMNS)}")
    columns = CSV_COLUMNS[table]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in _rows(report, table):
        writer.writerow([_cell(row.get(column)) for column in columns])
    return buffer.getvalue()
