"""Turn the errors a `usage` command can meet into one clear line on stderr and an exit code.

Exit codes: 2 for bad input (bad dates, an unknown account, a bad argument, a bad config
file: a ``QueryError`` or ``ConfigError`` of the aggregator, a ``QueryError`` of
``uptake.client``; a central store URL that is malformed or names a server that does not
answer or refuses the login: ``StoreUnreachableError``), 1 for everything else that stops
a command (no database yet, daemon failure, unreadable file). Never a traceback: those
are for bugs, not for users.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Final, NoReturn

from uptake_aggregator.errors import (
    AggregatorError,
    ConfigError,
    QueryError,
    StoreUnreachableError,
)

__all__ = [
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "CliError",
    "cli_errors",
    "fail",
    "parse_day",
]

#: The command ran but could not do its job (no database, daemon failure, I/O error).
EXIT_FAILURE: Final = 1
#: The command line asked for something invalid (bad date, unknown account, bad argument).
EXIT_USAGE: Final = 2


class CliError(Exception):
    """A failure the user can fix; ``exit_code`` is ``EXIT_FAILURE`` or ``EXIT_USAGE``."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def fail(message: str, exit_code: int = EXIT_FAILURE) -> NoReturn:
    """Stop the command with ``message`` (one line, says what to do) and ``exit_code``."""
    raise CliError(message, exit_code)


def parse_day(text: str | None, option: str) -> date | None:
    """Parse a ``YYYY-MM-DD`` UTC date given to ``option``; ``None`` passes through.

    >>> parse_day("2026-11-23", "--since")
    datetime.date(2026, 11, 23)
    """
    if text is None:
        return None
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        fail(f"{option}: {text!r} is not a date; use YYYY-MM-DD (UTC)", EXIT_USAGE)


def _one_line(message: str) -> str:
    return " ".join(str(message).split()) or "unknown error"


@contextmanager
def cli_errors() -> Iterator[None]:
    """Run a command body, turning expected errors into one stderr line and an exit code.

    Example::

        with cli_errors():
            report = fetch_report(...)
    """
    try:
        yield
    except CliError as exc:
        _exit(exc.message, exc.exit_code)
    except (QueryError, ConfigError, StoreUnreachableError) as exc:
        _exit(str(exc), EXIT_USAGE)
    except AggregatorError as exc:
        _exit(str(exc), EXIT_FAILURE)
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        _exit(f"{exc.strerror or exc}{':' if where else ''}{where}", EXIT_FAILURE)
    except Exception as exc:
        # The daemon client's errors: not imported for the check (start-up time of the
        # commands that never talk to a daemon); if the client is not loaded, none came
        # from it.
        client = sys.modules.get("uptake.client")
        if client is not None and isinstance(exc, client.DaemonError):
            code = EXIT_USAGE if isinstance(exc, client.QueryError) else EXIT_FAILURE
            _exit(str(exc), code)
        # Imported only here: `uptake.protocol` loads msgspec and the SDK's model, which
        # commands that never talk to a daemon should not pay for at start-up.
        from uptake.protocol import ErrorCode, ProtocolError

        if not isinstance(exc, ProtocolError):
            raise
        code = EXIT_USAGE if exc.code == ErrorCode.BAD_QUERY else EXIT_FAILURE
        _exit(f"the daemon refused the request ({exc.code}): {exc.message}", code)


def _exit(message: str, exit_code: int) -> NoReturn:
    # Plain stderr and SystemExit rather than typer's: `usage report --format json`
    # runs without typer (``uptake_cli._fast``), and typer lets SystemExit through.
    sys.stderr.write(f"usage: error: {_one_line(message)}\n")
    sys.stderr.flush()
    raise SystemExit(exit_code)
