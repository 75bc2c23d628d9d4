"""`usage check`: the config's goals (and regressions against a baseline) as an exit code.

For cron and CI. Prints every goal not met and every failed ``--fail-on`` rule; exits 0
when all goals are met, 1 when a goal is ``warning`` and none ``critical``, 3 when a goal
is ``critical`` or a ``--fail-on`` rule fails, 2 for bad input (a bad config file, rule,
baseline or option). ``--record`` also stores the status changes in the alert log and
delivers them like the daemon does, for setups without a daemon.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Final, Optional

import typer

from uptake_cli._errors import EXIT_USAGE, cli_errors, fail
from uptake_cli._options import ConfigOption, DbOption, SocketOption, StoreOption
from uptake_cli._reporting import (
    add_goals,
    alert_log_location,
    fetch_report,
    read_config,
    report_filters,
)

__all__ = ["EXIT_CRITICAL", "EXIT_WARNING", "check", "register"]

#: A goal is at warning level (and none critical).
EXIT_WARNING: Final = 1
#: A goal is critical, or a --fail-on rule failed.
EXIT_CRITICAL: Final = 3
#: How long `--record` waits for the command and webhook to take the changes.
_DELIVERY_WAIT_S: Final = 60.0

_FAIL_ON_HELP: Final = (
    "Fail (exit 3) on a regression against --baseline: PATH OP CHANGE, e.g. "
    "'stickiness<-10%' (fell by more than 10%), 'accounts.utilization<-0.1' (any account "
    "fell by more than 0.1), 'accounts[acme].active_users<0'. PATH: METRIC, product.METRIC, "
    "accounts.METRIC, features.METRIC, accounts[NAME].METRIC, features[NAME].METRIC; OP: "
    "< <= > >=; CHANGE with % is relative, without it absolute. Repeatable."
)


def _read_baseline(path: Path) -> dict[str, Any]:
    try:
        baseline = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"--baseline: cannot read {path}: {exc.strerror or exc}", EXIT_USAGE)
    except (ValueError, UnicodeDecodeError) as exc:
        fail(
            f"--baseline: {path} is not JSON ({exc}); save one with `usage report --format json`",
            EXIT_USAGE,
        )
    if not isinstance(baseline, dict) or not isinstance(baseline.get("product"), dict):
        fail(
            f"--baseline: {path} is not a usage report; save one with "
            "`usage report --format json -o FILE`",
            EXIT_USAGE,
        )
    return baseline


def _fmt(value: float | None) -> str:
    from uptake_cli.render_goals import fmt_value

    return fmt_value(value)


def check(  # noqa: PLR0917 - typer maps each parameter to an option
    since: Annotated[
        Optional[str], typer.Option(help="First day of the window, YYYY-MM-DD (UTC).")
    ] = None,
    until: Annotated[
        Optional[str], typer.Option(help="Day after the window, YYYY-MM-DD (UTC, excluded).")
    ] = None,
    account: Annotated[Optional[str], typer.Option(help="Only this account.")] = None,
    user: Annotated[Optional[str], typer.Option(help="Only this user.")] = None,
    feature: Annotated[Optional[str], typer.Option(help="Only this feature.")] = None,
    baseline: Annotated[
        Optional[Path],
        typer.Option(help="A saved `usage report --format json` to compare with.", dir_okay=False),
    ] = None,
    fail_on: Annotated[
        Optional[list[str]], typer.Option("--fail-on", metavar="RULE", help=_FAIL_ON_HELP)
    ] = None,
    record: Annotated[
        bool,
        typer.Option(
            "--record",
            help="Also store status changes in the alert log and deliver them to [alerts] "
            "(as the daemon does; for cron without a daemon).",
        ),
    ] = False,
    config: ConfigOption = None,
    db: DbOption = None,
    socket: SocketOption = None,
    store: StoreOption = None,
) -> None:
    """Check the goals of uptake.toml: exit 0 all met, 1 a warning, 3 a critical (2 bad input).

    Prints every goal not met. With --baseline and --fail-on, also fails (exit 3) on a
    regression against a saved report. Unknown goals (no value) are listed but do not
    change the exit code.

    Examples:

        usage check --config uptake.toml

        usage report --format json -o base.json   # on the main branch

        usage check --baseline base.json --fail-on 'stickiness<-10%' --fail-on 'mau<0'

        usage check --store postgresql://uptake@db.internal/uptake --record   # every host
    """
    code = 0
    with cli_errors():
        from uptake_aggregator.metrics.goals import worst_status
        from uptake_aggregator.metrics.regressions import compare, parse_rule

        filters = report_filters(since, until, account, user, feature)
        settings = read_config(config)
        rules = [parse_rule(text) for text in fail_on or []]
        if rules and baseline is None:
            fail("--fail-on needs --baseline OLD.json to compare with", EXIT_USAGE)
        if baseline is not None and not rules:
            fail("--baseline needs at least one --fail-on RULE", EXIT_USAGE)
        old = _read_baseline(baseline) if baseline is not None else None
        where = settings.path or "no config file found"
        if not settings.goals and not rules:
            fail(f"nothing to check: no [[goal]] in {where} and no --fail-on", EXIT_USAGE)
        if record and not settings.goals:
            fail(f"--record needs goals: no [[goal]] in {where}", EXIT_USAGE)
        if record and any(value is not None for value in (since, until, account, user, feature)):
            fail(
                "--record evaluates the default report, as the daemon does: drop "
                "--since/--until/--account/--user/--feature",
                EXIT_USAGE,
            )
        usage = add_goals(fetch_report(filters, db, socket, store), settings)

        from uptake_cli.render_goals import fmt_goal, goals_not_met

        for row in goals_not_met(usage):
            typer.echo(fmt_goal(row))
        worst = worst_status(row["status"] for row in usage["goals"])
        code = {"critical": EXIT_CRITICAL, "warning": EXIT_WARNING}.get(worst, 0)
        if old is not None:
            for result in compare(old, usage, rules):
                # Name the subject when the rule covers several (accounts.METRIC).
                several = result.rule.name is None and result.rule.part != "product"
                subject = f" [{result.subject}]" if several else ""
                if result.change is None:
                    typer.echo(f"skipped   {result.rule.text}{subject}: {result.note}")
                    continue
                unit = "%" if result.rule.relative else ""
                line = (
                    f"{result.rule.text}{subject}: {_fmt(result.baseline)} -> "
                    f"{_fmt(result.current)} (change {result.change:+.4g}{unit})"
                )
                if result.failed:
                    typer.echo(f"regressed {line}")
                    code = EXIT_CRITICAL
        if code == 0:
            met = sum(1 for row in usage["goals"] if row["status"] == "met")
            typer.echo(f"ok: {met} of {len(usage['goals'])} goals met, no regression", err=True)
        if record:
            _record(usage, settings, alert_log_location(db, socket, store))
    if code:
        raise typer.Exit(code)


def _record(usage: dict[str, Any], settings: Any, location: Path | str) -> None:
    from uptake_aggregator.alerts import Notifier, evaluate_and_record
    from uptake_aggregator.store import open_store, shown_location

    messages = evaluate_and_record(usage, settings.goals, open_store(location).alert_log())
    notifier = Notifier(settings.alerts)
    notifier.send(messages)
    notifier.close(timeout=_DELIVERY_WAIT_S)
    delivered = f", {notifier.failed} deliveries failed" if notifier.failed else ""
    where = shown_location(location)
    typer.echo(f"recorded {len(messages)} status changes in {where}{delivered}", err=True)


def register(app: typer.Typer) -> None:
    """Add `usage check` to the app."""
    app.command("check")(check)
