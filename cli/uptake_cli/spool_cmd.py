"""`usage spool status|replay`: the events SDK processes spooled and not yet delivered.

``status`` lists, per daemon address, what waits in the spool (files, events, bytes, the
oldest file's age, files of live writers, damaged bytes). ``replay`` sends the orphaned
files meant for one daemon now, with the locks every replayer takes (docs/protocol.md,
"The spool"); the daemon also adopts them by itself every few seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from uptake_cli._errors import cli_errors, fail
from uptake_cli._options import SocketOption

if TYPE_CHECKING:
    from uptake.client import DaemonClient
    from uptake.spool import SpoolSummary

__all__ = ["register", "replay", "spool_app", "status"]

spool_app = typer.Typer(
    name="spool",
    help="Show or replay the events SDK processes spooled while the daemon was away.",
    no_args_is_help=True,
)

SpoolDirOption = Annotated[
    Optional[list[Path]],
    typer.Option(
        "--spool-dir",
        help="Spool root to look in (repeatable; default: the cache dir's spool and"
        " $UPTAKE_SPOOL_DIR).",
        show_default=False,
    ),
]


def _roots(spool_dir: list[Path] | None) -> list[Path]:
    from uptake.paths import default_spool_dirs

    return list(spool_dir) if spool_dir else default_spool_dirs()


@spool_app.command()
def status(
    spool_dir: SpoolDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What waits in the spool, per daemon address.

    Example: usage spool status
    """
    from uptake.spool import summarize

    with cli_errors():
        summaries = [summary for root in _roots(spool_dir) for summary in summarize(root)]
        rows = [_row(summary) for summary in summaries if summary.files]
        if as_json:
            import json

            typer.echo(json.dumps(rows, indent=2))
        elif not rows:
            typer.echo("the spool is empty: nothing waits for a daemon")
        else:
            typer.echo(_table(rows))


def _row(summary: SpoolSummary) -> dict[str, Any]:
    return {
        "address": summary.address,
        "dir": str(summary.directory),
        "files": summary.files,
        "events": summary.events,
        "bytes": summary.bytes,
        "oldest_age_s": None if summary.oldest_age_s is None else round(summary.oldest_age_s, 1),
        "live_files": summary.live_files,
        "damaged_bytes": summary.damaged_bytes,
    }


def _table(rows: list[dict[str, Any]]) -> str:
    from uptake_cli._present import fmt_duration

    lines = []
    for row in rows:
        age = fmt_duration(row["oldest_age_s"])
        lines += [
            f"{row['address'] or '(address not recorded)'}",
            f"  dir       {row['dir']}",
            f"  waiting   {row['files']} files, {row['events']:,} events,"
            f" {row['bytes']:,} bytes, oldest {age}",
            f"  writers   {row['live_files']} files still being written by live processes",
        ]
        if row["damaged_bytes"]:
            lines.append(f"  damaged   {row['damaged_bytes']:,} bytes (skipped on replay)")
    return "\n".join(lines)


@spool_app.command()
def replay(socket: SocketOption = None, spool_dir: SpoolDirOption = None) -> None:
    """Send the orphaned spool files meant for the daemon on --socket to it now.

    Files whose writer is still running are left to it. Example: usage spool replay
    """
    from uptake.client import DaemonClient, DaemonUnavailableError
    from uptake.paths import default_socket_path
    from uptake.spool import namespace_dir, replay_orphans

    with cli_errors():
        socket_path = (socket or default_socket_path()).absolute()
        files = events = live = damaged = refused = 0
        try:
            with DaemonClient(socket_path, timeout=30.0, client_name="usage-spool") as client:
                sender = _Sender(client)
                for root in _roots(spool_dir):
                    outcome = replay_orphans(namespace_dir(root, str(socket_path)), sender)
                    files += outcome.files
                    events += outcome.events
                    live += outcome.live_files
                    damaged += outcome.damaged_bytes
                refused = sender.refused
        except DaemonUnavailableError:
            fail(f"no uptake daemon is running on {socket_path}; start one: usage daemon start")
        typer.echo(
            f"replayed {files} files, {events:,} events to {socket_path}"
            + (f" ({refused} refused by the daemon)" if refused else "")
        )
        if live:
            typer.echo(f"{live} files are still being written by live processes; left to them")
        if damaged:
            typer.echo(f"{damaged:,} damaged bytes were skipped (torn or corrupt records)")


class _Sender:
    """Sends one spool record as a batch; an event the daemon refuses is counted, not sent."""

    def __init__(self, client: DaemonClient) -> None:
        import msgspec

        from uptake.protocol import Event

        self._client = client
        self._decode = msgspec.msgpack.Decoder(Event).decode
        self.refused = 0

    def __call__(self, record: list[bytes]) -> None:
        import msgspec

        from uptake.client import BatchRefusedError

        events = []
        for raw in record:
            try:
                events.append(self._decode(raw))
            except msgspec.DecodeError:
                self.refused += 1
        try:
            self._client.send(events)
        except BatchRefusedError:
            for event in events:  # find the refused one(s): send the rest
                try:
                    self._client.send([event])
                except BatchRefusedError:
                    self.refused += 1


def register(app: typer.Typer) -> None:
    """Add the `usage spool` group to the app."""
    app.add_typer(spool_app)
