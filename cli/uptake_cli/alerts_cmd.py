"""`usage alerts`: the history of goal status changes (the alert log), oldest first."""

from __future__ import annotations

import json
from datetime import datetime, time, timezone
from enum import Enum
from typing import Annotated, Any, Optional

import typer

from uptake_cli._errors import cli_errors, parse_day
from uptake_cli._options import DbOption, SocketOption, StoreOption

__all__ = ["AlertsFormat", "alerts", "register"]


class AlertsFormat(str, Enum):
    """What `usage alerts` writes."""

    table = "table"
    json = "json"


def alerts(
    since: Annotated[
        Optional[str], typer.Option(help="Only changes from this day on, YYYY-MM-DD (UTC).")
    ] = None,
    output_format: Annotated[
        AlertsFormat, typer.Option("--format", "-f", help="Output format.")
    ] = AlertsFormat.table,
    db: DbOption = None,
    socket: SocketOption = None,
    store: StoreOption = None,
) -> None:
    """List goal status changes: when, which goal, which subject, from, to, and the value.

    Recorded by the daemon every [alerts] every (with --config) and by
    `usage check --record`; with --store, those recorded at the central store. A first
    reading of a subject that is met or unknown is not a change; "from" is "none" when
    nothing was recorded before.

    Example: usage alerts --since 2026-11-01 --format json
    """
    with cli_errors():
        from uptake_aggregator.alerts import iso_time
        from uptake_aggregator.store import open_store
        from uptake_cli._reporting import alert_log_location

        day = parse_day(since, "--since")
        since_us = None
        if day is not None:
            start = datetime.combine(day, time(0), tzinfo=timezone.utc)
            since_us = int(start.timestamp()) * 1_000_000
        log = open_store(alert_log_location(db, socket, store)).alert_log()
        changes = log.changes(since_us)
        rows: list[dict[str, Any]] = [
            {
                "time": iso_time(change.ts_us),
                "goal": change.goal,
                "subject": change.subject,
                "from": change.before,
                "to": change.after,
                "value": change.value,
            }
            for change in changes
        ]
        if output_format is AlertsFormat.json:
            typer.echo(json.dumps(rows, indent=2))
            return
        from rich import box
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        from uptake_cli.render_goals import fmt_value

        table = Table(title="Goal status changes", title_justify="left", box=box.SIMPLE_HEAD)
        for header in ("Time (UTC)", "Goal", "Subject", "From", "To", "Value"):
            table.add_column(header, justify="right" if header == "Value" else "left")
        for row in rows:
            table.add_row(
                row["time"],
                Text(row["goal"]),
                Text(row["subject"]),
                row["from"] or "none",
                row["to"],
                fmt_value(row["value"]),
            )
        if not rows:
            table.caption = "No goal status changes recorded."
        Console().print(table)


def register(app: typer.Typer) -> None:
    """Add `usage alerts` to the app."""
    app.command("alerts")(alerts)
