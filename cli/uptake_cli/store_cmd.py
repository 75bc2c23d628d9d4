"""`usage store init URL`: create or migrate the central PostgreSQL store's schema.

Run it once on the centre (or from any host) before the daemons forward into it; running
it again is harmless (it applies only the migrations the database lacks) and is how a
newer uptake migrates the centre. The password comes from the URL, ``PGPASSWORD`` or
``~/.pgpass`` and is never printed: every message shows the URL redacted.
"""

from __future__ import annotations

from typing import Annotated

import typer

from uptake_cli._errors import cli_errors
from uptake_cli._options import store_url

__all__ = ["init_store", "register", "store_app"]

store_app = typer.Typer(
    name="store",
    help="The central PostgreSQL store that many hosts' daemons forward into.",
    no_args_is_help=True,
)


@store_app.command("init")
def init_store(
    url: Annotated[
        str,
        typer.Argument(
            help="postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE[?sslmode=...]",
            envvar="UPTAKE_STORE",
            show_default=False,
        ),
    ],
) -> None:
    """Create the central schema at URL, or migrate it to this uptake's version.

    Idempotent: an up-to-date store is left as it is. Exit 2 for a bad URL, a server
    that does not answer or a refused login.

    Example: usage store init postgresql://uptake@db.internal/uptake
    """
    with cli_errors():
        checked = store_url(url, "URL")
        from uptake_aggregator.store.postgres.connection import migrate
        from uptake_aggregator.store.postgres.urls import redact

        before, after = migrate(checked)
        where = redact(checked)
        if before == after:
            typer.echo(f"central store {where}: schema version {after}, up to date")
        elif before == 0:
            typer.echo(f"central store {where}: created schema version {after}")
        else:
            typer.echo(f"central store {where}: migrated schema version {before} -> {after}")


def register(app: typer.Typer) -> None:
    """Add `usage store` to the app."""
    app.add_typer(store_app)
