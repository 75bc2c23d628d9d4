"""`usage prune --before DAY`: delete old events for good, keeping every report consistent.

The work is the store's ``prune`` (for SQLite ``uptake_aggregator.store.sqlite.prune``,
where what survives and why is documented). This module checks the command line, refuses
while a daemon serves the database, shows what would go and asks before deleting anything.

A running daemon is refused rather than asked to prune: its writer caches which (user,
feature) spans are already stored, and a prune narrows them, so the daemon would need a
new protocol request and a cache reset in its writer. Stopping it for the few seconds a
prune takes is simpler and safe: the SDKs spool meanwhile and replay afterwards.
"""

from __future__ import annotations

import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated

import typer

from uptake_cli._backend import resolve
from uptake_cli._errors import EXIT_USAGE, cli_errors, fail, parse_day
from uptake_cli._options import DbOption, SocketOption

# The daemon client and the prune module are imported when a prune runs: `usage` imports
# every command module at start-up, whichever command runs.

__all__ = ["prune_events", "register"]

_CLIENT = "usage-cli"
_STATUS_TIMEOUT_S = 5.0


def _interactive() -> bool:
    """True when a person can answer the confirmation prompt (tests replace this)."""
    return sys.stdin.isatty()


def _parse_before(text: str) -> date:
    day = parse_day(text, "--before")
    assert day is not None  # parse_day returns None only for None
    tomorrow = datetime.now(timezone.utc).date() + timedelta(days=1)
    if day > tomorrow:
        fail(
            f"--before {text} is later than tomorrow (UTC): it would delete events not "
            "recorded yet; give the first day to keep",
            EXIT_USAGE,
        )
    return day


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or a.samefile(b)
    except OSError:
        return False


def _refuse_while_daemon_runs(socket: Path, db: Path) -> None:
    """Fail when a daemon serves ``db``: on ``socket``, or on any socket (its db pidfile)."""
    from uptake.client import DaemonClient, DaemonError
    from uptake_aggregator.daemon.lifecycle import database_daemon, running_pid

    holder = database_daemon(db)
    if holder is not None:
        holder_pid, holder_socket = holder
        fail(
            f"an uptake daemon (pid {holder_pid or '?'}) serves this database on "
            f"{holder_socket or 'its socket'}: stop it first with `usage daemon stop "
            f"--socket {holder_socket or '...'}`, then prune"
        )
    pid = running_pid(socket)  # the pidfile's lock: also a daemon still starting up
    status = None
    if socket.exists():
        try:
            with DaemonClient(socket, timeout=_STATUS_TIMEOUT_S, client_name=_CLIENT) as client:
                status = client.status()
        except DaemonError:
            status = None  # a stale socket file: nobody answers
    if status is not None:
        served = status.get("db")
        if isinstance(served, str) and served and not _same_file(Path(served), db):
            return  # that daemon writes another database: this one is safe to prune
        pid = pid or status.get("pid")
    elif pid is None:
        return
    fail(
        f"an uptake daemon (pid {pid or '?'}) is running on {socket} with this database: "
        f"stop it first with `usage daemon stop --socket {socket}`, then prune"
    )


def _unforwarded_line(unforwarded: int, kept: bool) -> str:
    if kept:
        return (
            f"{unforwarded:,} of the older events are not in the central store yet and are "
            "kept until forwarded (forwarding given up for good? --include-unforwarded)"
        )
    return (
        f"{unforwarded:,} of them were never forwarded: the central store will not get "
        "those deleted (--include-unforwarded)"
    )


def prune_events(  # noqa: PLR0917 - typer maps each parameter to an option
    before: Annotated[
        str,
        typer.Option(
            "--before",
            help="First UTC day to keep (YYYY-MM-DD); events before it are deleted.",
            show_default=False,
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what would be deleted.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (for scripts).")
    ] = False,
    vacuum: Annotated[
        bool,
        typer.Option(
            "--vacuum", help="Afterwards rewrite the file so it shrinks (slow on big databases)."
        ),
    ] = False,
    include_unforwarded: Annotated[
        bool,
        typer.Option(
            "--include-unforwarded",
            help="Also delete old events the central store does not have yet (only once "
            "this host stopped forwarding for good: the centre will never get them).",
        ),
    ] = False,
    db: DbOption = None,
    socket: SocketOption = None,
) -> None:
    """Delete the events before a UTC day for good (IRREVERSIBLE).

    Keep a copy first: usage export --until DAY -o old-events.jsonl

    Afterwards every report equals one from a fresh database holding only the kept events.

    Kept from before DAY, so that reports whose look-backs start at DAY or later do not change: each account's latest seats event and latest event; each user's latest and latest account-naming event; sessions running across DAY or whose margin reaches it. Figures that look back before their window (previous window, WAU/MAU, the lifecycle's first week, release impact) see only those, as do reports on days before DAY.

    A database that forwards to a central store keeps the events the centre does not have yet; after you stop forwarding for good, --include-unforwarded deletes them too.

    Refused while a daemon serves the database: run `usage daemon stop` first.

    One transaction: an interrupted prune changes nothing. The file keeps its size (new events reuse the space) unless --vacuum.

    Example: usage prune --before 2026-01-01 --dry-run
    """  # noqa: E501 - one line per paragraph: the help is wrapped to the terminal
    with cli_errors():
        day = _parse_before(before)
        target = resolve(db, socket)
        from uptake.paths import default_socket_path
        from uptake_aggregator.store import open_store
        from uptake_aggregator.units import day_start_us

        _refuse_while_daemon_runs(target.socket or default_socket_path(), target.db)
        cut_us = day_start_us(day)
        store = open_store(target.db)
        keep_unforwarded = not include_unforwarded
        plan = store.plan_prune(cut_us, keep_unforwarded=keep_unforwarded)
        typer.echo(
            f"{target.db}: {plan.removed:,} of {plan.stored_before:,} events are before "
            f"{day.isoformat()} and would be deleted; {plan.kept:,} kept "
            f"({plan.anchors:,} of them older, kept for later reports)"
        )
        if plan.unforwarded:
            typer.echo(_unforwarded_line(plan.unforwarded, keep_unforwarded))
        if dry_run:
            typer.echo("dry run: nothing was deleted")
            return
        if plan.removed == 0:
            typer.echo("nothing to prune")
            return
        if not yes:
            if not _interactive():
                fail(
                    "refusing to delete without confirmation (no terminal to ask on): "
                    "pass --yes, after `usage export` if you want a copy",
                    EXIT_USAGE,
                )
            typer.confirm(
                f"Delete {plan.removed:,} events for good? (`usage export` keeps a copy)",
                abort=True,
            )
        started = time.perf_counter()
        result = store.prune(cut_us, keep_unforwarded=keep_unforwarded)
        took = time.perf_counter() - started
        typer.echo(
            f"removed {result.removed:,} events before {day.isoformat()}; "
            f"{result.kept:,} kept ({result.anchors:,} of them older) in {took:.1f} s"
        )
        if vacuum:
            typer.echo(f"vacuumed: {store.vacuum():,} bytes on disk")


def register(app: typer.Typer) -> None:
    """Add `usage prune` to the app."""
    app.command("prune")(prune_events)
