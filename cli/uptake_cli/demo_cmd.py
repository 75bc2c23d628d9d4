"""`usage demo`: a simulated SaaS through the real SDK and daemon, then the report.

Everything happens in a private temporary directory: its own daemon socket, database,
log and SDK spool, so the demo never touches the user's real data unless ``--db`` (or
``--keep``) asks it to keep the database. Several host processes
(``python -m uptake_cli.demo.host``) each send their shard of the scenario
(``uptake_cli.demo.simulation``) through ``uptake.record``, the way several app
servers share one daemon; a progress bar follows the daemon's ``status`` (events stored
against events expected). Then the `usage report` tables of the report window are
printed and the HTML report written. The daemon is stopped and the temporary directory
removed at the end, also on Ctrl-C, SIGTERM or an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Optional

import typer

from uptake_cli._errors import cli_errors

# The demo itself (rich, the simulation, the renderers, the SDK) is in _demo, imported
# when a demo runs: `usage` imports every command module at start-up, whichever runs.
if TYPE_CHECKING:
    from uptake_cli.demo.runner import DemoRun, run_demo

__all__ = ["DemoRun", "demo", "register", "run_demo"]

# The simulation's defaults, repeated so that building the `demo` command's options does
# not import the simulation; tests/cli/test_startup.py checks they stay equal.
DEFAULT_DAYS: Final = 90
DEFAULT_SEED: Final = 7
MIN_DAYS: Final = 14

_MAX_PROCESSES: Final = 32
_LAZY: Final = frozenset({"DemoRun", "run_demo"})


def __getattr__(name: str) -> Any:
    """Keep ``from uptake_cli.demo_cmd import run_demo`` (and ``DemoRun``) working, lazily."""
    if name in _LAZY:
        from uptake_cli.demo import runner as _demo

        return getattr(_demo, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def demo(  # noqa: PLR0917 - typer maps each parameter to an option
    days: Annotated[
        int,
        typer.Option(min=MIN_DAYS, max=365, help="Days of usage to simulate, up to today (UTC)."),
    ] = DEFAULT_DAYS,
    processes: Annotated[
        int,
        typer.Option(
            min=1, max=_MAX_PROCESSES, help="Host processes sending events through the SDK."
        ),
    ] = 4,
    keep: Annotated[
        bool, typer.Option(help="Keep the demo database afterwards and print its path.")
    ] = False,
    db: Annotated[
        Optional[Path],
        typer.Option(
            help="Store the demo's events in this database and keep it (default: a "
            "temporary one, removed at the end).",
            dir_okay=False,
        ),
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the HTML report.", dir_okay=False)
    ] = Path("uptake-report.html"),
    seed: Annotated[int, typer.Option(help="Seed of the simulation.")] = DEFAULT_SEED,
    socket: Annotated[
        Optional[Path],
        typer.Option(
            help="Where the demo's private daemon listens (default: a temporary socket). "
            "Like --db, it ignores UPTAKE_SOCKET so the demo never joins your real daemon.",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Simulate a SaaS through the real SDK and daemon, print the report, write the HTML.

    Runs a private daemon on a temporary socket and database (your real data is never
    touched), several host processes that send the simulated events, then prints the
    `usage report` tables for the last 30 days (half the simulated days when fewer than
    60) and writes the HTML report.

    Examples:

        usage demo

        usage demo --days 30 --processes 2 -o /tmp/report.html
    """
    from uptake_cli.demo.runner import run_demo

    with cli_errors():
        try:
            run_demo(
                days=days,
                processes=processes,
                output=output,
                db=db,
                keep=keep,
                seed=seed,
                socket=socket,
            )
        except KeyboardInterrupt:
            typer.echo("usage: demo interrupted; the daemon was stopped", err=True)
            raise typer.Exit(130) from None


def register(app: typer.Typer) -> None:
    """Add `usage demo` to the app."""
    app.command("demo")(demo)
