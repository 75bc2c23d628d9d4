"""`usage export`: write stored events as JSON lines, the format `usage import` reads.

Each line is one event with its ``id`` (32 hex digits) and ``ts`` (integer microseconds),
so exporting and importing elsewhere (or again) stores every event exactly once. The
database is opened read-only; a running daemon keeps writing meanwhile (WAL).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, Optional

import typer

from uptake_cli._backend import resolve
from uptake_cli._errors import EXIT_USAGE, cli_errors, fail, parse_day
from uptake_cli._options import DbOption, SocketOption

# msgspec, the SDK and the storage module are imported when an export runs: `usage`
# imports every command module at start-up, whichever command runs.
if TYPE_CHECKING:
    from uptake.protocol import Event

__all__ = ["export_events", "register"]


def _day_us(day: date | None) -> int | None:
    from uptake_aggregator.units import day_start_us

    return None if day is None else day_start_us(day)


def _line(event: Event, encode: Callable[[Any], bytes]) -> bytes:
    fields: dict[str, Any] = {"id": event.id.hex(), "ts": event.ts, "kind": event.kind}
    for name in ("name", "user", "account", "session", "value", "props", "source"):
        value = getattr(event, name)
        if value is not None:
            fields[name] = value
    return encode(fields) + b"\n"


def export_events(db: Path, out: IO[bytes], since: date | None, until: date | None) -> int:
    """Write the events of ``db`` with ``since <= day < until`` to ``out``; return how many.

    >>> import io, tempfile; from pathlib import Path
    >>> export_events(Path(tempfile.mkdtemp()) / "none.db", io.BytesIO(), None, None)
    Traceback (most recent call last):
    uptake_aggregator.errors.StorageError: no database at ...
    """
    import msgspec

    from uptake_aggregator.store import open_store

    encode = msgspec.json.Encoder().encode
    count = 0
    for event in open_store(db).read_events(_day_us(since), _day_us(until)):
        out.write(_line(event, encode))
        count += 1
    return count


def export_file(
    since: Annotated[
        Optional[str], typer.Option(help="First UTC day to export (YYYY-MM-DD).")
    ] = None,
    until: Annotated[
        Optional[str], typer.Option(help="Day after the last one exported (YYYY-MM-DD).")
    ] = None,
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Write here instead of stdout.", dir_okay=False),
    ] = None,
    db: DbOption = None,
    socket: SocketOption = None,
) -> None:
    """Write stored events as JSON lines (the `usage import` format), oldest first.

    Example: usage export --since 2026-11-01 -o november.jsonl
    """
    with cli_errors():
        since_day, until_day = parse_day(since, "--since"), parse_day(until, "--until")
        if since_day and until_day and since_day >= until_day:
            fail("--since must be before --until", EXIT_USAGE)
        database = resolve(db, socket).db
        if output is None:
            count = export_events(database, sys.stdout.buffer, since_day, until_day)
            sys.stdout.buffer.flush()
        else:
            with output.open("wb") as handle:
                count = export_events(database, handle, since_day, until_day)
        typer.echo(f"{count:,} events exported from {database}", err=True)


def register(app: typer.Typer) -> None:
    """Add `usage export` to the app."""
    app.command("export")(export_file)
