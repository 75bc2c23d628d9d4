"""The `usage` console script: the JSON report fast path, else the typer app."""

from __future__ import annotations

import sys
from importlib.util import find_spec

__all__ = ["main"]

#: What `usage` says when only the SDK is installed (`pip install uptake`, no extra).
NEEDS_SERVER = (
    "usage: the daemon and the `usage` command need the server extra: pip install 'uptake[server]'"
)


def main() -> None:
    """Console-script entry point for `usage` (also ``python -m uptake_cli``).

    A plain `usage report --format json` runs without importing typer (``_fast``); every
    other command line goes to the typer app. Without the ``server`` extra it prints one
    line saying what to install and exits 2.
    """
    if find_spec("typer") is None or find_spec("anyio") is None:
        print(NEEDS_SERVER, file=sys.stderr)
        sys.exit(2)
    from uptake_cli._fast import run

    code = run(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from uptake_cli.app import main as app_main

    app_main()
