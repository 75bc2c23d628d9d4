"""The `usage` typer app; each command group lives in its own module and registers here."""

from __future__ import annotations

import typer

from uptake_cli import (
    alerts_cmd,
    check_cmd,
    daemon_cmd,
    demo_cmd,
    export_cmd,
    import_cmd,
    prune_cmd,
    report_cmd,
    seats_cmd,
    spool_cmd,
    store_cmd,
)

__all__ = ["app", "main"]

app = typer.Typer(
    name="usage",
    help="uptake: local product-usage tracking. Reports, the daemon, imports and a demo.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def version() -> None:
    """Print the installed uptake version."""
    from importlib.metadata import version as dist_version

    typer.echo(dist_version("uptake"))


report_cmd.register(app)
check_cmd.register(app)
alerts_cmd.register(app)
seats_cmd.register(app)
import_cmd.register(app)
export_cmd.register(app)
prune_cmd.register(app)
daemon_cmd.register(app)
demo_cmd.register(app)
spool_cmd.register(app)
store_cmd.register(app)


def main() -> None:
    """Console-script entry point for `usage`."""
    app()
