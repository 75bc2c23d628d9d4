"""Every expected failure becomes one line on stderr and exit code 1 or 2, never a traceback."""

from __future__ import annotations

from datetime import date

import pytest
import typer
from typer.testing import CliRunner

from uptake.client import DaemonRefusedError, DaemonTimeoutError, DaemonUnavailableError
from uptake.client import QueryError as RefusedQueryError
from uptake.protocol import ErrorCode, ProtocolError
from uptake_aggregator.errors import QueryError, StorageError
from uptake_cli._errors import CliError, cli_errors, parse_day


def _run(error: BaseException) -> tuple[int, str]:
    app = typer.Typer()

    @app.command()
    def boom() -> None:
        with cli_errors():
            raise error

    result = CliRunner().invoke(app, [])
    assert "Traceback" not in result.output
    return result.exit_code, result.stderr


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (CliError("bad thing", 2), 2),
        (QueryError("unknown account 'x'"), 2),
        (StorageError("no database at /x"), 1),
        (DaemonUnavailableError("no daemon"), 1),
        (DaemonRefusedError("internal", "disk full"), 1),
        (DaemonTimeoutError("no answer within 5 s"), 1),
        (RefusedQueryError("bad date '2026-13-45'"), 2),
        (ProtocolError(ErrorCode.BAD_QUERY, "bad filter"), 2),
        (ProtocolError(ErrorCode.INTERNAL, "oops"), 1),
        (FileNotFoundError(2, "No such file or directory", "/x/events.jsonl"), 1),
        (PermissionError(13, "Permission denied", "/root/report.html"), 1),
    ],
)
def test_errors_become_one_line_and_an_exit_code(error: BaseException, code: int) -> None:
    exit_code, stderr = _run(error)
    assert exit_code == code
    assert stderr.startswith("usage: error: ")
    assert len(stderr.splitlines()) == 1


def test_multi_line_messages_are_folded() -> None:
    _, stderr = _run(StorageError("first line\n  second line"))
    assert stderr == "usage: error: first line second line\n"


def test_unexpected_errors_are_not_hidden() -> None:
    # A bug is not a user error: it must stay visible rather than be dressed up.
    app = typer.Typer()

    @app.command()
    def boom() -> None:
        with cli_errors():
            raise ZeroDivisionError

    result = CliRunner().invoke(app, [])
    assert isinstance(result.exception, ZeroDivisionError)


@pytest.mark.parametrize("text", ["2026-11-23", "2024-02-29"])
def test_parse_day_accepts_utc_dates(text: str) -> None:
    assert parse_day(text, "--since") == date.fromisoformat(text)


@pytest.mark.parametrize("text", ["2026-11-31", "2026-1-5", "20261123", "tomorrow", ""])
def test_parse_day_refuses_anything_else(text: str) -> None:
    with pytest.raises(CliError) as caught:
        parse_day(text, "--since")
    assert caught.value.exit_code == 2
    assert "YYYY-MM-DD" in caught.value.message
