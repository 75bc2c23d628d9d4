"""`usage import FILE`: load JSON-lines events through the same storage code as the daemon.

Line format: one JSON object per line with the event fields of docs/protocol.md (``kind``
and ``ts`` required).

* ``ts``: integer microseconds since the Unix epoch, or an ISO-8601 string
  (``2026-11-23T09:30:00Z``, ``2026-11-23T10:30:00+01:00``; no offset means UTC).
* ``id``: optional, 32 hex digits (16 bytes; the dashes of the UUID text form are allowed).
  Without one the id is derived from the line's canonical content (its fields with ``ts``
  in microseconds, sorted keys, compact JSON) with ``uptake.protocol.content_event_id``, so
  importing the same file twice stores nothing twice, whatever the key order or ts format.
* ``props``: an object of string, number or boolean values.

Blank lines are skipped. A bad line is reported with its line number and the reason and
never stops the good lines around it from being stored. Exit code 0 when every line was
stored (or already present), 1 when some lines were rejected.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, Final

import typer

from uptake_cli._backend import EventWriter, resolve
from uptake_cli._errors import EXIT_FAILURE, cli_errors
from uptake_cli._options import DbOption, SocketOption

# The line parser (msgspec Structs, the SDK package) and rich's progress bar are imported
# when an import runs, not when `usage` starts: every command module is imported then.
if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from uptake_cli._importer import ImportSummary, LineError, import_events, parse_line

__all__ = ["ImportSummary", "LineError", "import_events", "parse_line", "register"]

_SHOWN_ERRORS: Final = 50
_LAZY: Final = frozenset({"ImportSummary", "LineError", "import_events", "parse_line"})


def __getattr__(name: str) -> Any:
    """Keep ``from uptake_cli.import_cmd import parse_line`` (etc.) working, lazily."""
    if name in _LAZY:
        from uptake_cli import _importer

        return getattr(_importer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _progress(console: Console, sized: bool) -> Progress:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("[bold]{task.description}"), BarColumn()]
    if sized:
        columns += [TaskProgressColumn(), DownloadColumn(), TimeRemainingColumn()]
    else:
        columns += [MofNCompleteColumn()]
    return Progress(*columns, console=console, transient=False)


def import_file(
    file: Annotated[
        Path,
        typer.Argument(help="JSON-lines file of events ('-' reads stdin).", allow_dash=True),
    ],
    db: DbOption = None,
    socket: SocketOption = None,
) -> None:
    """Load events from a JSON-lines FILE (one event per line, docs/protocol.md).

    ts: integer microseconds since 1970, or ISO-8601 (no offset means UTC).

    id: optional, 32 hex digits (16 bytes); derived from the line's content when absent.

    Re-importing a file stores nothing twice.

    Bad lines are listed with their numbers and skipped; the good ones are stored (exit 1).

    Example: usage import events.jsonl
    """
    from rich.console import Console

    from uptake_cli._importer import import_events

    with cli_errors():
        errors = Console(stderr=True)
        stdin = str(file) == "-"
        total = None if stdin else file.stat().st_size
        with EventWriter(resolve(db, socket)) as writer:
            handle: BinaryIO = sys.stdin.buffer if stdin else file.open("rb")
            try:
                with _progress(errors, total is not None) as progress:
                    summary = import_events(handle, writer, progress, total)
            finally:
                if not stdin:
                    handle.close()
        for number, reason in summary.rejected[:_SHOWN_ERRORS]:
            errors.print(f"line {number}: {reason}", markup=False, highlight=False)
        hidden = len(summary.rejected) - _SHOWN_ERRORS
        if hidden > 0:
            errors.print(f"... and {hidden} more rejected lines", markup=False)
        typer.echo(
            f"{file}: {summary.stored:,} events stored, {summary.duplicates:,} already "
            f"present, {len(summary.rejected):,} lines rejected (into the {writer.via})"
        )
        if summary.rejected:
            raise typer.Exit(EXIT_FAILURE)


def register(app: typer.Typer) -> None:
    """Add `usage import` to the app."""
    app.command("import")(import_file)
