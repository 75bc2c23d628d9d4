"""`usage daemon start|stop|status`: run and inspect the aggregator daemon.

``start`` detaches by default (pidfile next to the socket, log in the platformdirs log
dir) and returns once the daemon answers; ``--foreground`` runs it in this process for
systemd and supervisors. ``stop`` sends SIGTERM and waits: the daemon stops accepting,
commits and acknowledges what it received, then exits. ``status`` asks the daemon.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from uptake_cli._errors import cli_errors, fail
from uptake_cli._options import ConfigOption, DbOption, SocketOption

__all__ = ["daemon_app", "register", "start", "status", "stop"]

# Everything beyond typer (the SDK's paths, lifecycle, server, client) is imported inside
# the commands: `usage` builds every command at start-up, whichever one runs.

daemon_app = typer.Typer(
    name="daemon",
    help="Start, stop and inspect the aggregator daemon.",
    no_args_is_help=True,
)

TcpOption = Annotated[
    Optional[int],
    typer.Option(
        "--tcp",
        metavar="PORT",
        help="Also listen on tcp://127.0.0.1:PORT (for platforms without Unix sockets); "
        "clients send the token from the token file.",
        show_default=False,
    ),
]
TokenFileOption = Annotated[
    Optional[Path],
    typer.Option(
        "--token-file",
        envvar="UPTAKE_TOKEN_FILE",
        help="Where the TCP token is written (mode 0600).",
        show_default=False,
    ),
]


@daemon_app.command()
def start(  # noqa: PLR0917 - typer maps each parameter to an option
    db: DbOption = None,
    socket: SocketOption = None,
    tcp: TcpOption = None,
    token_file: TokenFileOption = None,
    foreground: Annotated[
        bool, typer.Option("--foreground", help="Run in this process (systemd, supervisors).")
    ] = False,
    log_file: Annotated[
        Optional[Path],
        typer.Option(
            "--log-file", help="Log file (default: the uptake log dir).", show_default=False
        ),
    ] = None,
    spool_dir: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--spool-dir",
            help="Also adopt orphaned SDK spool files from this dir (repeatable; the cache"
            " dir's spool and $UPTAKE_SPOOL_DIR always).",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
    forward: Annotated[
        Optional[str],
        typer.Option(
            "--forward",
            envvar="UPTAKE_FORWARD",
            metavar="URL",
            help="Forward every committed event to the central store at this"
            " postgresql:// URL (create it first: usage store init URL). The password may"
            " come from the URL, PGPASSWORD or ~/.pgpass; it is never logged.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start the daemon (detached unless --foreground).

    The daemon also stores what SDK processes spooled for it and could not replay
    before they ended (see `usage spool`). With goals in the config file, it evaluates
    them every [alerts] every and delivers each status change to [alerts] command /
    webhook (see `usage alerts`). With --forward it also forwards every event to a
    central store, exactly once; the local database keeps what the centre lacks while
    the centre is down (`usage daemon status` shows the lag).

    Example: usage daemon start --db ~/uptake.db --config ~/uptake.toml
    """
    from uptake.paths import default_db_path, default_socket_path
    from uptake_aggregator.daemon import lifecycle
    from uptake_aggregator.daemon.adoption import spool_roots
    from uptake_aggregator.daemon.server import DaemonConfig

    with cli_errors():
        from uptake_aggregator.config import find_config, load_config

        # Validated here, so a bad file is exit 2 with its line, before anything starts.
        config_path = find_config(config)
        load_config(config_path)
        daemon_config = DaemonConfig(
            socket_path=(socket or default_socket_path()).absolute(),
            db_path=(db or default_db_path()).absolute(),
            tcp_port=tcp,
            token_path=token_file.absolute() if token_file else None,
            config_path=config_path.absolute() if config_path is not None else None,
            spool_dirs=spool_roots(spool_dir or ()),
            forward=forward or None,
        )
        log = (log_file or lifecycle.default_log_file()).absolute()
        pid = lifecycle.running_pid(daemon_config.socket_path)
        if pid is not None:
            typer.echo(f"uptake daemon already running (pid {pid}) on {daemon_config.socket_path}")
            return
        if foreground:
            lifecycle.configure_logging(log, stderr=True)
            lifecycle.run_foreground(daemon_config)
            return
        pid = lifecycle.start_detached(
            lifecycle.daemon_argv(daemon_config, log),
            daemon_config.socket_path,
            log,
            env=lifecycle.daemon_env(daemon_config),
        )
        typer.echo(f"uptake daemon started (pid {pid}) on {daemon_config.socket_path}")
        typer.echo(f"database {daemon_config.db_path}; log {log}")


@daemon_app.command()
def stop(
    db: DbOption = None,
    socket: SocketOption = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for the daemon to exit.")
    ] = 30.0,
) -> None:
    """Stop the daemon gracefully: acknowledged and received events are committed first.

    Example: usage daemon stop
    """
    from uptake.paths import default_socket_path
    from uptake_aggregator.daemon import lifecycle

    del db  # accepted for symmetry with the other commands; the socket names the daemon
    with cli_errors():
        socket_path = (socket or default_socket_path()).absolute()
        pid = lifecycle.stop_daemon(socket_path, timeout=timeout)
        if pid is None:
            typer.echo(f"no uptake daemon is running on {socket_path}")
        else:
            typer.echo(f"uptake daemon (pid {pid}) stopped")


@daemon_app.command()
def status(
    db: DbOption = None,
    socket: SocketOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Show whether the daemon runs, and its events, clients, database size and uptime.

    Exits 1 when no daemon answers.
    """
    from uptake.client import DaemonClient, DaemonUnavailableError
    from uptake.paths import default_socket_path
    from uptake_aggregator.daemon import lifecycle

    with cli_errors():
        socket_path = (socket or default_socket_path()).absolute()
        try:
            with DaemonClient(socket_path, timeout=5.0, client_name="usage-cli") as client:
                body = client.status()
        except DaemonUnavailableError:
            pid = lifecycle.running_pid(socket_path)
            if pid is not None:
                fail(f"the daemon (pid {pid}) runs but does not answer on {socket_path}")
            fail(f"no uptake daemon is running on {socket_path}; start one: usage daemon start")
        if db is not None and Path(body["db"]) != db.absolute():
            typer.echo(f"note: this daemon serves {body['db']}, not {db}", err=True)
        if as_json:
            import json

            typer.echo(json.dumps(body, indent=2, sort_keys=True))
        else:
            typer.echo(_format_status(body))


def _format_status(body: dict[str, Any]) -> str:
    megabytes = body["db_bytes"] / 1_000_000
    tcp = "off" if body["tcp_port"] is None else f"tcp://127.0.0.1:{body['tcp_port']}"
    lines = [
        f"uptake daemon {body['version']} running (pid {body['pid']}), "
        f"up {_duration(body['uptime_s'])}",
        f"  socket          {body['socket']}",
        f"  tcp             {tcp}",
        f"  database        {body['db']} ({megabytes:.1f} MB)",
        f"  events stored   {body['events_stored']:,}",
        f"  clients         {body['clients_connected']}",
        f"  queued events   {body['queued_events']:,}",
    ]
    goals = body.get("goals")
    if isinstance(goals, dict):
        lines.append(
            f"  goals           every {goals['every_s']:g} s: {goals['evaluations']:,} "
            f"evaluations, {goals['changes']:,} status changes (usage alerts)"
        )
    spool = body.get("spool")
    if spool is not None:
        oldest = spool["oldest_waiting_s"]
        waiting = f"{spool['waiting_files']} files of live writers"
        if oldest is not None:
            waiting += f", oldest {_duration(oldest)}"
        lines += [
            f"  spool adopted   {spool['adopted_files']} files, {spool['adopted_events']:,}"
            f" events ({spool['duplicates']:,} already stored, {spool['refused_events']:,}"
            f" refused, {spool['damaged_files']} damaged files)",
            f"  spool waiting   {waiting}",
        ]
    forward = body.get("forward")
    if isinstance(forward, dict):
        lines += _format_forward(forward)
    return "\n".join(lines)


def _format_forward(forward: dict[str, Any]) -> list[str]:
    """The forwarding lines: target, state, lag (events and seconds), the last error."""
    lines = [
        f"  forward to      {forward['target']} (host {forward['host_id'] or '?'})",
        f"  forward lag     {forward['lag_events']:,} events, {_duration(forward['lag_s'])}"
        f" ({forward['state'].replace('_', ' ')}; cursor {forward['cursor']:,})",
        f"  forwarded       {forward['forwarded_events']:,} events since start,"
        f" {forward['dead_letters']:,} dead letters,"
        f" {forward.get('folded_events', 0):,} folded into the centre's rollups",
    ]
    if forward["last_error"]:
        lines.append(
            f"  forward error   {forward['last_error']}"
            + (
                f" ({forward['failed_attempts']} failed attempts in a row)"
                if forward["failed_attempts"]
                else " (recovered since)"
            )
        )
    return lines


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def register(app: typer.Typer) -> None:
    """Add the `usage daemon` group to the app."""
    app.add_typer(daemon_app)
