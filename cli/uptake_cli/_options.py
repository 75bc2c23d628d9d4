"""Options every `usage` command shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

__all__ = ["ConfigOption", "DbOption", "SocketOption"]

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
