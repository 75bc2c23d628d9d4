"""``python -m uptake_aggregator``: start the daemon (detached unless ``--foreground``).

Examples::

    python -m uptake_aggregator                         # detached, default socket and db
    python -m uptake_aggregator --foreground            # for systemd and supervisors
    python -m uptake_aggregator --socket /tmp/up/s.sock --db /tmp/up/u.db --tcp 7878
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from uptake.paths import default_db_path, default_socket_path
from uptake_aggregator.daemon.adoption import DEFAULT_ADOPT_INTERVAL, spool_roots
from uptake_aggregator.daemon.connection import ConnectionSettings
from uptake_aggregator.daemon.forwarder import DEFAULT_BACKOFF_MAX_S, DEFAULT_CHUNK_EVENTS
from uptake_aggregator.daemon.server import DaemonConfig
from uptake_aggregator.daemon.writer import DEFAULT_MAX_QUEUED_EVENTS
from uptake_aggregator.errors import AggregatorError

__all__ = ["build_parser", "config_from_args", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The command-line options of the daemon."""
    parser = argparse.ArgumentParser(
        prog="python -m uptake_aggregator",
        description="The uptake aggregator daemon: receives events, stores them, answers reports.",
    )
    parser.add_argument("--socket", type=Path, help="Unix socket (env UPTAKE_SOCKET)")
    parser.add_argument("--db", type=Path, help="SQLite database (env UPTAKE_DB)")
    parser.add_argument(
        "--tcp",
        type=int,
        metavar="PORT",
        help="also listen on 127.0.0.1:PORT (0: any free port); clients need the token file",
    )
    parser.add_argument(
        "--token-file", type=Path, help="where the TCP token is written (env UPTAKE_TOKEN_FILE)"
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="uptake.toml whose goals are evaluated every [alerts] every (env UPTAKE_CONFIG)",
    )
    parser.add_argument(
        "--spool-dir",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="also adopt orphaned SDK spool files for this daemon from DIR (repeatable;"
        " always: the cache dir's spool and $UPTAKE_SPOOL_DIR)",
    )
    parser.add_argument(
        "--no-adopt",
        action="store_true",
        help="never adopt orphaned spool files (SDK processes still replay their own)",
    )
    parser.add_argument(
        "--forward",
        metavar="URL",
        help="forward every committed event to the central store at URL"
        " (postgresql://...; env UPTAKE_FORWARD, which keeps the password out of `ps`)",
    )
    parser.add_argument(
        "--foreground", action="store_true", help="run in this process (systemd, supervisors)"
    )
    parser.add_argument(
        "--log-file",
        type=Path,
        help="log file (default: <log dir>/uptaked.log, env UPTAKE_LOG_DIR)",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    parser.add_argument(
        "--quiet", action="store_true", help="log only to the file, not also to stderr"
    )
    limits = parser.add_argument_group("limits (advanced)")
    limits.add_argument(
        "--hello-timeout", type=float, default=10.0, help="seconds a client has to say Hello"
    )
    limits.add_argument(
        "--frame-timeout",
        type=float,
        default=30.0,
        help="seconds a started frame has to arrive completely",
    )
    limits.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        help="close connections silent this long (default: never)",
    )
    limits.add_argument(
        "--max-queued-events",
        type=int,
        default=DEFAULT_MAX_QUEUED_EVENTS,
        help="events waiting for the writer before clients are made to wait",
    )
    limits.add_argument(
        "--forward-chunk",
        type=int,
        default=DEFAULT_CHUNK_EVENTS,
        metavar="EVENTS",
        help="events per central transaction when forwarding",
    )
    limits.add_argument(
        "--forward-backoff-max",
        type=float,
        default=DEFAULT_BACKOFF_MAX_S,
        metavar="SECONDS",
        help="longest wait between two attempts while the central store fails",
    )
    limits.add_argument(
        "--adopt-interval",
        type=float,
        default=DEFAULT_ADOPT_INTERVAL,
        help="seconds between two looks for orphaned spool files",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> DaemonConfig:
    """Build the daemon's configuration from parsed options and UPTAKE_* defaults."""
    return DaemonConfig(
        socket_path=(args.socket or default_socket_path()).absolute(),
        db_path=(args.db or default_db_path()).absolute(),
        tcp_port=args.tcp,
        token_path=args.token_file.absolute() if args.token_file else None,
        connection=ConnectionSettings(
            hello_timeout=args.hello_timeout,
            frame_timeout=args.frame_timeout,
            idle_timeout=args.idle_timeout,
        ),
        max_queued_events=args.max_queued_events,
        config_path=_config_path(args.config),
        spool_dirs=() if args.no_adopt else spool_roots(args.spool_dir),
        adopt_interval=args.adopt_interval,
        forward=args.forward or os.environ.get("UPTAKE_FORWARD") or None,
        forward_chunk_events=args.forward_chunk,
        forward_backoff_max_s=args.forward_backoff_max,
    )


def _config_path(option: Path | None) -> Path | None:
    # Only an explicit file: the daemon never picks up a config nobody named.
    text = option or os.environ.get("UPTAKE_CONFIG") or None
    return Path(text).absolute() if text is not None else None


def main(argv: list[str] | None = None) -> int:
    """Run the daemon command line; return the exit code."""
    from uptake_aggregator.daemon import lifecycle

    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    log_file = (args.log_file or lifecycle.default_log_file()).absolute()
    try:
        if args.foreground:
            lifecycle.configure_logging(log_file, stderr=not args.quiet, level=args.log_level)
            lifecycle.run_foreground(config)
        else:
            pid = lifecycle.running_pid(config.socket_path)
            if pid is not None:
                print(f"uptake daemon already running (pid {pid}) on {config.socket_path}")
                return 0
            pid = lifecycle.start_detached(
                lifecycle.daemon_argv(config, log_file, args.log_level),
                config.socket_path,
                log_file,
                env=lifecycle.daemon_env(config),
            )
            print(f"uptake daemon started (pid {pid}) on {config.socket_path}; log {log_file}")
    except AggregatorError as exc:
        print(f"uptake daemon: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        print(f"uptake daemon: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
