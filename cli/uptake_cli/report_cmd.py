"""`usage report`: the usage report as terminal tables, JSON, CSV or a self-contained HTML file.

Thin: parse the options, get the usage report (through the daemon when one answers, else
from the database opened read-only), render it, write it to stdout or ``--output``.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from uptake_cli._errors import cli_errors
from uptake_cli._options import ConfigOption, DbOption, SocketOption, StoreOption
from uptake_cli._present import Report, describe_scope
from uptake_cli._reporting import (
    add_goals,
    fetch_report,
    read_config,
    render_json,
    report_filters,
    with_config_core,
)

# Renderers (rich, the HTML/SVG code) are imported by the code that uses them: every
# other command imports this module too (start-up time).

__all__ = ["OutputFormat", "TableName", "fetch_report", "register", "render_json", "report"]


class OutputFormat(str, Enum):
    """What `usage report` writes."""

    table = "table"
    json = "json"
    csv = "csv"
    html = "html"


class TableName(str, Enum):
    """The report table `--format csv` writes."""

    users = "users"
    accounts = "accounts"
    features = "features"
    dau = "dau"
    goals = "goals"
    lifecycle = "lifecycle"
    releases = "releases"
    power_users = "power_users"
    activation = "activation"


def _write_tables(report: Report, output: Path | None, scope: str) -> None:
    from rich.console import Console, Group

    from uptake_cli.render_goals import goals_table
    from uptake_cli.render_table import report_tables

    tables = report_tables(report, scope=scope)
    goals = goals_table(report)
    if goals is not None:
        tables = Group(tables, goals)
    if output is None:
        Console().print(tables)
        return
    with output.open("w", encoding="utf-8") as handle:
        Console(file=handle, width=120, color_system=None).print(tables)


def report(  # noqa: PLR0917 - typer maps each parameter to an option
    since: Annotated[
        Optional[str],
        typer.Option(help="First day of the window, YYYY-MM-DD (UTC). Default: until - 30 days."),
    ] = None,
    until: Annotated[
        Optional[str],
        typer.Option(help="Day after the window, YYYY-MM-DD (UTC, excluded). Default: tomorrow."),
    ] = None,
    account: Annotated[Optional[str], typer.Option(help="Only this account.")] = None,
    user: Annotated[Optional[str], typer.Option(help="Only this user.")] = None,
    feature: Annotated[Optional[str], typer.Option(help="Only this feature.")] = None,
    core: Annotated[
        Optional[str],
        typer.Option(
            help="The product's core features, NAME,... (comma-separated): the activation "
            "figures (time to first value) of new users. Default: the config file's."
        ),
    ] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="Output format.")
    ] = OutputFormat.table,
    table: Annotated[
        TableName, typer.Option(help="The table --format csv writes.")
    ] = TableName.users,
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Write to FILE instead of stdout.", dir_okay=False),
    ] = None,
    db: DbOption = None,
    socket: SocketOption = None,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Report product usage: DAU/WAU/MAU, features, accounts and seats, users, retention, goals.

    Reads through the daemon when one answers on the socket, else opens the database read-only;
    with --store, reads the central store that every host forwards to.

    Examples:

        usage report --since 2026-10-01 --until 2026-11-01

        usage report --format html -o usage.html

        usage report --format csv --table accounts -o accounts.csv

        usage report --core export_csv,share_link --format csv --table activation

        usage report --store postgresql://uptake@db.internal/uptake --format json
    """
    with cli_errors():
        settings = read_config(config)  # validated before any report work
        filters = with_config_core(
            report_filters(since, until, account, user, feature, core=core), settings
        )
        usage = add_goals(fetch_report(filters, db, socket, store), settings)
        scope = describe_scope(account, user, feature)
        if output_format is OutputFormat.table:
            _write_tables(usage, output, scope)
        else:
            if output_format is OutputFormat.json:
                text = render_json(usage)
            elif output_format is OutputFormat.csv:
                from uptake_cli.render_csv import render_csv

                text = render_csv(usage, table.value)
            else:
                from uptake_cli.render_html import render_html

                text = render_html(usage, scope=scope)
            if output is None:
                sys.stdout.write(text)
                sys.stdout.flush()
            else:
                # newline="" keeps CSV's \r\n line ends as they are on every platform.
                with output.open("w", encoding="utf-8", newline="") as handle:
                    handle.write(text)
        if output is not None:
            typer.echo(f"wrote {output_format.value} report to {output}", err=True)


def register(app: typer.Typer) -> None:
    """Add `usage report` to the app."""
    app.command("report")(report)
