"""The report's goals (docs/metrics.md, "Goals and alerts") in the terminal, HTML and `usage check`.

Kept apart from the other renderers: the table and HTML report each add one call.
Progress is r of the goal (value / target, or target / value for ``at_most``), drawn
against the target (the dashed line at 100%).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from uptake_cli._present import MISSING, Report

if TYPE_CHECKING:
    from rich.table import Table

__all__ = [
    "STATUS_COLOURS",
    "fmt_goal",
    "fmt_value",
    "goals_html",
    "goals_not_met",
    "goals_table",
]

#: Colours of the goal statuses (terminal styles and HTML bars).
STATUS_COLOURS: Final = {
    "met": "#15803d",
    "warning": "#ca8a04",
    "critical": "#b91c1c",
    "unknown": "#6b7280",
}
_STATUS_STYLE: Final = {
    "met": "bold green",
    "warning": "bold yellow",
    "critical": "bold red",
    "unknown": "dim",
}
#: Progress bars stop at twice the target: further is just "well past it".
_BAR_MAX: Final = 2.0


def fmt_value(value: float | None) -> str:
    """A goal's value or target: whole numbers as such, others with up to 4 significant digits.

    >>> fmt_value(120.0), fmt_value(0.71234), fmt_value(None)
    ('120', '0.7123', '—')
    """
    if value is None:
        return MISSING
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.4g}"


def fmt_goal(row: dict[str, Any]) -> str:
    """One line for a goal row, e.g. ``critical  account acme: utilization 0.3 (at least 0.7)``."""
    where = row["scope"] if row["subject"] == "product" else f"{row['scope']} {row['subject']}"
    wording = "at least" if row.get("direction", "at_least") == "at_least" else "at most"
    return (
        f"{row['status']:<8}  {where}: {row['metric']} {fmt_value(row['value'])} "
        f"({wording} {fmt_value(row['target'])})"
    )


def goals_not_met(report: Report) -> list[dict[str, Any]]:
    """The goal rows whose status is not ``met``, worst first (stable within a status)."""
    order = {"critical": 0, "warning": 1, "unknown": 2}
    rows = [row for row in report.get("goals", []) if row["status"] != "met"]
    return sorted(rows, key=lambda row: order.get(row["status"], 3))


def _progress(row: dict[str, Any]) -> float | None:
    from uptake_aggregator.metrics.goals import goal_ratio

    ratio = goal_ratio(row["value"], row["target"], row.get("direction", "at_least"))
    return None if ratio is None else min(ratio, _BAR_MAX)


def goals_table(report: Report) -> Table | None:
    """The goals as a rich table (None when the report has none)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from uptake_cli._present import fmt_pct

    rows = report.get("goals", [])
    if not rows:
        return None
    table = Table(title="Goals", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for header, justify in (
        ("Goal", "left"),
        ("Subject", "left"),
        ("Value", "right"),
        ("Target", "right"),
        ("Progress", "right"),
        ("Status", "left"),
    ):
        table.add_column(header, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for row in rows:
        wording = "≥" if row.get("direction", "at_least") == "at_least" else "≤"
        table.add_row(
            Text(f"{row['scope']}.{row['metric']} {wording}"),
            Text(row["subject"]),
            fmt_value(row["value"]),
            fmt_value(row["target"]),
            fmt_pct(_progress(row)),
            Text(row["status"], style=_STATUS_STYLE.get(row["status"], "")),
        )
    return table


def goals_html(report: Report) -> str:
    """The goals section of the HTML report: progress bars against the target ("" when none)."""
    from uptake_cli import svg
    from uptake_cli.svg import esc

    rows = report.get("goals", [])
    if not rows:
        return ""
    bars = []
    for row in rows:
        wording = "at least" if row.get("direction", "at_least") == "at_least" else "at most"
        text = f"{fmt_value(row['value'])} / {fmt_value(row['target'])} · {row['status']}"
        bars.append(
            svg.Bar(
                label=f"{row['subject']} · {row['metric']}",
                value=_progress(row),
                text=text,
                colour=STATUS_COLOURS.get(row["status"], "#6b7280"),
                tooltip=f"{row['scope']} {row['subject']}: {row['metric']} "
                f"{fmt_value(row['value'])}, goal {wording} {fmt_value(row['target'])} "
                f"({row['status']})",
            )
        )
    chart = svg.bar_chart(bars, "Progress towards each goal", reference=1.0, css_class="bars goals")
    note = esc(
        "Progress is value / target (target / value for at-most goals); the dashed line is "
        "the target. Met at 100%, warning from 70%, critical below; grey: no value."
    )
    return f'<section id="goals"><h2>Goals</h2><p class="note">{note}</p>{chart}</section>'
