"""Options every `usage` command shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

__all__ = ["ConfigOption", "DbOption", "SocketOption", "StoreOption", "store_url"]

# typer needs Optional[...] at runtime on Python 3.10 (no PEP 604 evaluation of strings).
DbOption = Annotated[
    Optional[Path],
    typer.Option("--db", envvar="UPTAKE_DB", help="SQLite database path.", show_default=False),
]
SocketOption = Annotated[
    Optional[Path],
    typer.Option(
        "--socket", envvar="UPTAKE_SOCKET", help="Daemon Unix socket path.", show_default=False
    ),
]
StoreOption = Annotated[
    Optional[str],
    typer.Option(
        "--store",
        envvar="UPTAKE_STORE",
        help="Read the central store at this postgresql:// URL (many hosts' events) "
        "instead of the local daemon or database.",
        show_default=False,
    ),
]
ConfigOption = Annotated[
    Optional[Path],
    typer.Option(
        "--config",
        help="Config file with goals and alerts (env UPTAKE_CONFIG; default: uptake.toml "
        "in the user config dir, when it exists).",
        show_default=False,
        dir_okay=False,
    ),
]


def store_url(url: str, option: str) -> str:
    """``url`` when it is a PostgreSQL URL; else stop with exit 2 saying what to give.

    Checked before any connection: a path given by mistake is named, not tried.

    >>> store_url("postgresql://db/uptake", "--store")
    'postgresql://db/uptake'
    """
    from uptake_aggregator.store.postgres.urls import is_postgres_url, redact
    from uptake_cli._errors import EXIT_USAGE, fail

    if not is_postgres_url(url):
        fail(
            f"{option}: {redact(url)!r} is not a central store URL; give "
            "postgresql://[USER@]HOST[:PORT]/DATABASE (the password from PGPASSWORD or "
            "~/.pgpass)",
            EXIT_USAGE,
        )
    return url
