"""The `usage` console script: the JSON report fast path, else the typer app."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Console-script entry point for `usage` (also ``python -m uptake_cli``).

    A plain `usage report --format json` runs without importing typer (``_fast``); every
    other command line goes to the typer app.
    """
    from uptake_cli._fast import run

    code = run(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from uptake_cli.app import main as app_main

    app_main()
