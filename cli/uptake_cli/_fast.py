"""`usage report --format json` without loading typer: the call scripts make most.

Importing typer (and the click it vendors) costs 60-90 ms, more than the whole report of a
small database. So the console script first tries this parser, which accepts only the
plain shape of that command::

    usage report --format json [--since D] [--until D] [--account A] [--user U]
                 [--feature F] [--core NAMES] [--db PATH] [--socket PATH]
                 [--store URL] [--config FILE]

(options in any order, as ``--option value`` or ``--option=value``, ``-f json``). Anything
else (another command or format, ``--help``, an unknown or repeated option, a missing
value, a value starting with ``-``) returns None and the typer app handles the command
line, so typer stays the one place that defines `usage`'s interface; this parser reads a
subset of it and runs the very same code (``uptake_cli._reporting``), with the same
environment variables, messages and exit codes. tests/cli/test_fast_report.py checks
that both ways print the same bytes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Final

__all__ = ["parse", "run"]

#: Option spellings -> parameter names; every one takes a value.
_OPTIONS: Final = {
    "--since": "since",
    "--until": "until",
    "--account": "account",
    "--user": "user",
    "--feature": "feature",
    "--core": "core",
    "--format": "format",
    "-f": "format",
    "--db": "db",
    "--socket": "socket",
    "--store": "store",
    "--config": "config",
}
#: The environment variables typer reads for options not given (empty counts as unset).
_ENVIRONMENT: Final = {"db": "UPTAKE_DB", "socket": "UPTAKE_SOCKET"}  # and UPTAKE_STORE


def parse(argv: list[str]) -> dict[str, str] | None:
    """The options of a plain `report --format json` command line, else None.

    >>> parse(["report", "--format=json", "--since", "2026-01-01"])
    {'format': 'json', 'since': '2026-01-01'}
    >>> parse(["report", "--format", "table"]) is None
    True
    """
    if not argv or argv[0] != "report":
        return None
    options: dict[str, str] = {}
    rest = argv[1:]
    index = 0
    while index < len(rest):
        token = rest[index]
        if token.startswith("--") and "=" in token:
            spelling, value = token.split("=", 1)
            index += 1
        else:
            if index + 1 >= len(rest):
                return None
            spelling, value = token, rest[index + 1]
            index += 2
        name = _OPTIONS.get(spelling)
        if name is None or name in options or value.startswith("-"):
            return None
        options[name] = value
    return options if options.get("format") == "json" else None


def run(argv: list[str]) -> int | None:
    """Run a plain `usage report --format json` and return its exit code; None otherwise."""
    options = parse(argv)
    if options is None:
        return None
    from uptake_cli._errors import cli_errors
    from uptake_cli._reporting import (
        add_goals,
        fetch_report,
        read_config,
        render_json,
        report_filters,
        with_config_core,
    )

    paths: dict[str, Path | None] = {}
    for name, variable in _ENVIRONMENT.items():
        text = options[name] if name in options else os.environ.get(variable) or None
        paths[name] = Path(text) if text is not None else None
    try:
        with cli_errors():
            filters = report_filters(
                options.get("since"),
                options.get("until"),
                options.get("account"),
                options.get("user"),
                options.get("feature"),
                core=options.get("core"),
            )
            explicit = options.get("config")
            config = read_config(Path(explicit) if explicit is not None else None)
            filters = with_config_core(filters, config)
            store = options.get("store", os.environ.get("UPTAKE_STORE") or None)
            usage = fetch_report(filters, paths["db"], paths["socket"], store)
            text = render_json(add_goals(usage, config))
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1
    sys.stdout.write(text)
    sys.stdout.flush()
    return 0
