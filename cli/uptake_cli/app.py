"""The `usage` typer app; each command group lives in its own module and registers here."""

from __future__ import annotations

import typer

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


def main() -> None:
    """Console-script entry point for `usage`."""
    app()
