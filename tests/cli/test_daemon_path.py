"""With a daemon running, commands go through it, and reports are identical either way."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.cli._events import SINCE, UNTIL, event_lines, running_daemon, write_lines
from uptake_cli.app import app

pytestmark = pytest.mark.slow

WINDOW = ["--since", SINCE, "--until", UNTIL]


def test_daemon_and_database_give_identical_reports(
    runner: CliRunner, socket_path: Path, tmp_path: Path
) -> None:
    db = tmp_path / "uptake.db"
    source = write_lines(tmp_path / "events.jsonl", event_lines())
    daemon_args = ["--socket", str(socket_path), "--db", str(db)]
    with running_daemon(socket_path, db, tmp_path / "daemon.log"):
        imported = runner.invoke(app, ["import", str(source), *daemon_args])
        assert imported.exit_code == 0, imported.output
        assert "(into the daemon)" in imported.stdout
        seats = runner.invoke(app, ["seats", "set", "globex", "9", *daemon_args])
        assert seats.exit_code == 0, seats.output
        assert "daemon" in seats.stdout

        via_daemon = {
            fmt: runner.invoke(app, ["report", *WINDOW, "-f", fmt, *daemon_args])
            for fmt in ("json", "csv", "table")
        }
        # Only --db: the database file is read directly, while the daemon still runs.
        via_db = {
            fmt: runner.invoke(app, ["report", *WINDOW, "-f", fmt, "--db", str(db)])
            for fmt in ("json", "csv", "table")
        }
        current = runner.invoke(app, ["report", "-f", "json", *daemon_args])
        refused = runner.invoke(app, ["report", "--account", "nope", *daemon_args])
    for fmt, answer in via_daemon.items():
        assert answer.exit_code == 0, answer.output
        assert answer.stdout == via_db[fmt].stdout, fmt
    # Seats set now count from now on: in the default window, not in November's.
    assert '"seats": 9' in current.stdout
    assert '"seats": 9' not in via_daemon["json"].stdout
    assert refused.exit_code == 2
    assert "unknown account" in refused.stderr


def test_a_stale_socket_file_falls_back_to_the_database(
    runner: CliRunner, socket_path: Path, tmp_path: Path
) -> None:
    socket_path.touch()  # left behind by a crashed daemon: nobody listens
    db = tmp_path / "uptake.db"
    args = ["--socket", str(socket_path), "--db", str(db)]
    result = runner.invoke(app, ["seats", "set", "acme", "5", *args])
    assert result.exit_code == 0, result.output
    assert "database" in result.stdout
    report = runner.invoke(app, ["report", "-f", "json", *args])
    assert report.exit_code == 0, report.output
    assert '"seats": 5' in report.stdout
