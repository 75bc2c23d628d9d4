"""`usage report`: the usage report as terminal tables, JSON, CSV or a self-contained HTML file.

Thin: parse the options, get the §6 report (through the daemon when one answers, else
from the database opened read-only), render it, write it to stdout or ``--output``.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from uptake_cli._backend import build_local, query_daemon, resolve
from uptake_cli._errors import EXIT_USAGE, cli_errors, fail, parse_day
from uptake_cli._options import DbOption, SocketOption
from uptake_cli._present import Report, describe_scope

# Renderers (rich, the HTML/SVG code), msgspec and the SDK's protocol module are imported
# by the code that uses them: `usage report --format json` should load only what JSON
# needs, and every other command imports this module too (start-up time).
if TYPE_CHECKING:
    from uptake.protocol import ReportFilters

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


def render_json(report: Report) -> str:
    """Return the report as JSON text in §6 field order (two-space indent, UTF-8 as is).

    Converting through the §6 Structs fixes the field order and the number types (rates
    are always floats), so the output is byte-identical whichever way the report was read,
    and a report that breaks the contract fails here rather than reaching a parser.
    """
    import msgspec

    from uptake_aggregator.metrics.report_schema import Report as UsageReport

    # msgspec is ~15x faster than json.dumps on a 10k-user report, with the same values.
    typed = msgspec.convert(report, UsageReport)
    encoded = msgspec.json.format(msgspec.json.encode(typed), indent=2)
    return encoded.decode() + "\n"


def fetch_report(filters: ReportFilters, db: Path | None, socket: Path | None) -> Report:
    """Return the §6 report: from the daemon when one answers, else from the database."""
    target = resolve(db, socket)
    report = query_daemon(target.socket, filters)
    if report is None:
        report = build_local(target.db, filters)
    return report


def _filters(
    since: str | None,
    until: str | None,
    account: str | None,
    user: str | None,
    feature: str | None,
) -> ReportFilters:
    from uptake.protocol import ReportFilters

    since_day = parse_day(since, "--since")
    until_day = parse_day(until, "--until")
    if since_day and until_day and since_day >= until_day:
        fail(
            f"--since {since_day} is not before --until {until_day}: the window is "
            "[since, until), so until must be at least one day later",
            EXIT_USAGE,
        )
    return ReportFilters(
        since=since_day.isoformat() if since_day else None,
        until=until_day.isoformat() if until_day else None,
        account=account,
        user=user,
        feature=feature,
    )


def _write_tables(report: Report, output: Path | None, scope: str) -> None:
    from rich.console import Console

    from uptake_cli.render_table import report_tables

    tables = report_tables(report, scope=scope)
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
) -> None:
    """Report product usage: DAU/WAU/MAU, features, accounts and seats, users, retention.

    Reads through the daemon when one answers on the socket, else opens the database read-only.

    Examples:

        usage report --since 2026-10-01 --until 2026-11-01

        usage report --format html -o usage.html

        usage report --format csv --table accounts -o accounts.csv
    """
    with cli_errors():
        filters = _filters(since, until, account, user, feature)
        usage = fetch_report(filters, db, socket)
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
