"""`usage seats set ACCOUNT N`: record an account's licensed seats.

Seats are events (kind ``seats``, docs/protocol.md): the latest one before a day's end
gives the seats of that day, so setting seats never rewrites history. The event goes to
the daemon when one answers, else straight into the database through the storage code.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from uptake_cli._backend import EventWriter, resolve
from uptake_cli._errors import EXIT_USAGE, cli_errors, fail
from uptake_cli._options import DbOption, SocketOption

# The SDK package is imported where it is used (it costs ~30 ms of every `usage` start-up).
if TYPE_CHECKING:
    from uptake.protocol import Event

__all__ = ["register", "seats_app", "seats_event", "set_seats"]

seats_app = typer.Typer(
    name="seats",
    help="Licensed seats per account (used for utilization and idle-seat flags).",
    no_args_is_help=True,
)

#: ``source`` of events the CLI writes, so they can be told apart from the app's own.
_SOURCE = "usage-cli"


def seats_event(account: str, seats: int, ts_us: int | None = None) -> Event:
    """Return the ``seats`` event recording ``seats`` licensed seats for ``account``.

    >>> seats_event("acme", 50, 1_700_000_000_000_000).value
    50
    """
    from uptake.protocol import Event, new_event_id

    ts = time.time_ns() // 1000 if ts_us is None else ts_us
    return Event(
        id=new_event_id(ts), ts=ts, kind="seats", account=account, value=seats, source=_SOURCE
    )


@seats_app.command("set")
def set_seats(
    account: Annotated[str, typer.Argument(help="Account id, as the app sends it.")],
    seats: Annotated[int, typer.Argument(help="Licensed seats (0 or more).", min=0)],
    db: DbOption = None,
    socket: SocketOption = None,
) -> None:
    """Set ACCOUNT's licensed SEATS from now on (earlier days keep their seats).

    Example: usage seats set acme 50
    """
    from uptake.protocol import MAX_NAME_LENGTH

    with cli_errors():
        if not account.strip() or len(account) > MAX_NAME_LENGTH:
            fail(f"account must be 1 to {MAX_NAME_LENGTH} characters, got {account!r}", EXIT_USAGE)
        event = seats_event(account, seats)
        with EventWriter(resolve(db, socket)) as writer:
            writer.write([[event]])
        typer.echo(f"{account}: {seats} seats (recorded in the {writer.via})")


def register(app: typer.Typer) -> None:
    """Add the `usage seats` group to the app."""
    app.add_typer(seats_app)
