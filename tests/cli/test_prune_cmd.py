"""`usage prune`: confirmation, refusals and errors; reports match a fresh import after it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tests.cli._events import SINCE, UNTIL, event_lines, running_daemon, write_lines
from uptake_aggregator.store.sqlite.outbox import EVENT_COLUMNS
from uptake_cli import prune_cmd
from uptake_cli.app import app

CUT = "2026-11-08"


def _tables(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(db)
    try:
        names = [
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        # Re-imported events are new commits: compared without their local sequence.
        shown = {
            "events": f"(SELECT {EVENT_COLUMNS} FROM events)",
            "counters": "(SELECT * FROM counters WHERE name = 'events')",
        }
        return {
            name: sorted(conn.execute(f"SELECT * FROM {shown.get(name, name)}"), key=repr)
            for name in names
        }
    finally:
        conn.close()


@pytest.fixture
def loaded_db(runner: CliRunner, tmp_path: Path) -> Path:
    """A database holding the sample events of tests.cli._events (2026-11-01 .. 14)."""
    db = tmp_path / "uptake.db"
    source = write_lines(tmp_path / "events.jsonl", event_lines(users=8))
    imported = runner.invoke(app, ["import", str(source), "--db", str(db)])
    assert imported.exit_code == 0, imported.output
    return db


def _prune(runner: CliRunner, db: Path, *args: str, socket: Path, text: str = "") -> Result:
    return runner.invoke(
        app, ["prune", *args, "--db", str(db), "--socket", str(socket)], input=text or None
    )


def _report(runner: CliRunner, db: Path, since: str) -> dict[str, Any]:
    result = runner.invoke(
        app, ["report", "-f", "json", "--since", since, "--until", UNTIL, "--db", str(db)]
    )
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_prune_then_reports_equal_a_fresh_import_of_the_kept_events(
    runner: CliRunner, loaded_db: Path, tmp_path: Path, socket_path: Path
) -> None:
    before = _report(runner, loaded_db, CUT)

    pruned = _prune(runner, loaded_db, "--before", CUT, "--yes", socket=socket_path)

    assert pruned.exit_code == 0, pruned.output
    removed = int(pruned.stdout.split("removed ")[1].split()[0].replace(",", ""))
    assert removed > 0
    assert "kept" in pruned.stdout
    dump, fresh = tmp_path / "kept.jsonl", tmp_path / "fresh.db"
    assert runner.invoke(app, ["export", "--db", str(loaded_db), "-o", str(dump)]).exit_code == 0
    assert runner.invoke(app, ["import", str(dump), "--db", str(fresh)]).exit_code == 0
    for since in (SINCE, CUT):
        assert _report(runner, loaded_db, since) == _report(runner, fresh, since)
    # The window from the cut on keeps the figures that look no further back than it.
    after = _report(runner, loaded_db, CUT)
    assert after["product"]["dau"] == before["product"]["dau"]
    assert after["users"] == before["users"]
    assert [row["seats"] for row in after["accounts"]] == [
        row["seats"] for row in before["accounts"]
    ]
    # Idempotent: nothing left to prune at that day.
    again = _prune(runner, loaded_db, "--before", CUT, "--yes", socket=socket_path)
    assert again.exit_code == 0, again.output
    assert "nothing to prune" in again.stdout


def test_dry_run_keeps_everything(runner: CliRunner, loaded_db: Path, socket_path: Path) -> None:
    tables = _tables(loaded_db)
    result = _prune(runner, loaded_db, "--before", CUT, "--dry-run", socket=socket_path)
    assert result.exit_code == 0, result.output
    assert "would be deleted" in result.stdout
    assert "dry run: nothing was deleted" in result.stdout
    assert _tables(loaded_db) == tables


def test_without_a_terminal_it_needs_yes(
    runner: CliRunner, loaded_db: Path, socket_path: Path
) -> None:
    tables = _tables(loaded_db)
    result = _prune(runner, loaded_db, "--before", CUT, socket=socket_path)
    assert result.exit_code == 2
    assert "--yes" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert _tables(loaded_db) == tables


def test_the_prompt_decides(
    runner: CliRunner, loaded_db: Path, socket_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prune_cmd, "_interactive", lambda: True)
    tables = _tables(loaded_db)
    declined = _prune(runner, loaded_db, "--before", CUT, socket=socket_path, text="n\n")
    assert declined.exit_code == 1
    assert "usage export" in declined.stdout  # the prompt suggests a copy
    assert _tables(loaded_db) == tables
    accepted = _prune(runner, loaded_db, "--before", CUT, socket=socket_path, text="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert "removed" in accepted.stdout
    assert _tables(loaded_db) != tables


@pytest.mark.parametrize("day", ["2026-13-01", "yesterday", "2026-11-1", "", "2999-01-01"])
def test_bad_dates_are_one_line(
    runner: CliRunner, loaded_db: Path, socket_path: Path, day: str
) -> None:
    result = _prune(runner, loaded_db, "--before", day, "--yes", socket=socket_path)
    assert result.exit_code == 2
    assert result.stderr.startswith("usage: error: --before")
    assert len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.output


def test_no_database(runner: CliRunner, tmp_path: Path, socket_path: Path) -> None:
    missing = tmp_path / "none.db"
    result = _prune(runner, missing, "--before", CUT, "--yes", socket=socket_path)
    assert result.exit_code == 1
    assert result.stderr.startswith("usage: error: no database at")
    assert len(result.stderr.splitlines()) == 1
    assert not missing.exists()


def test_vacuum(runner: CliRunner, loaded_db: Path, socket_path: Path) -> None:
    result = _prune(runner, loaded_db, "--before", CUT, "--yes", "--vacuum", socket=socket_path)
    assert result.exit_code == 0, result.output
    assert "vacuumed" in result.stdout


@pytest.mark.slow
def test_refused_while_a_daemon_serves_the_database(
    runner: CliRunner, loaded_db: Path, tmp_path: Path, socket_path: Path
) -> None:
    tables = _tables(loaded_db)
    with running_daemon(socket_path, loaded_db, tmp_path / "daemon.log"):
        refused = _prune(runner, loaded_db, "--before", CUT, "--yes", socket=socket_path)
        assert refused.exit_code == 1
        assert "usage daemon stop" in refused.stderr
        assert len(refused.stderr.splitlines()) == 1
        # The same daemon found through UPTAKE_SOCKET when only --db is given.
        only_db = runner.invoke(
            app,
            ["prune", "--before", CUT, "--yes", "--db", str(loaded_db)],
            env={"UPTAKE_SOCKET": str(socket_path)},
        )
        assert only_db.exit_code == 1
        assert "usage daemon stop" in only_db.stderr
        # Found through the lock it holds next to the database, whatever socket is asked.
        elsewhere = _prune(
            runner, loaded_db, "--before", CUT, "--yes", socket=tmp_path / "other.sock"
        )
        assert elsewhere.exit_code == 1
        assert f"usage daemon stop --socket {socket_path}" in elsewhere.stderr
        assert len(elsewhere.stderr.splitlines()) == 1
        # A database the daemon does not serve can be pruned meanwhile.
        other = tmp_path / "other.db"
        other.write_bytes(loaded_db.read_bytes())
        allowed = _prune(runner, other, "--before", CUT, "--yes", socket=socket_path)
        assert allowed.exit_code == 0, allowed.output
    assert _tables(loaded_db) == tables


def test_importing_the_export_of_the_pruned_days_restores_everything(
    runner: CliRunner, loaded_db: Path, tmp_path: Path, socket_path: Path
) -> None:
    tables = _tables(loaded_db)
    old = tmp_path / "old.jsonl"
    exported = runner.invoke(
        app, ["export", "--until", CUT, "--db", str(loaded_db), "-o", str(old)]
    )
    assert exported.exit_code == 0, exported.output
    pruned = _prune(runner, loaded_db, "--before", CUT, "--yes", socket=socket_path)
    assert pruned.exit_code == 0, pruned.output
    assert _tables(loaded_db) != tables

    restored = runner.invoke(app, ["import", str(old), "--db", str(loaded_db)])

    assert restored.exit_code == 0, restored.output
    assert _tables(loaded_db) == tables


def _forward_state(db: Path, forwarded: int) -> None:
    """Mark ``db`` as an outbox forwarded up to local sequence ``forwarded`` (-1: never)."""
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute("UPDATE counters SET value = ? WHERE name = 'forwarded'", (forwarded,))
    finally:
        conn.close()


def _ids_before_cut(db: Path) -> set[bytes]:
    from datetime import date

    from uptake_aggregator.units import day_start_us

    conn = sqlite3.connect(db)
    try:
        cut_us = day_start_us(date.fromisoformat(CUT))
        return {row[0] for row in conn.execute("SELECT id FROM events WHERE ts < ?", (cut_us,))}
    finally:
        conn.close()


def test_events_not_yet_forwarded_stay_unless_forwarding_was_given_up(
    runner: CliRunner, loaded_db: Path, socket_path: Path, tmp_path: Path
) -> None:
    # The same database, never forwarded: what a plain prune keeps (the anchors).
    local = tmp_path / "local.db"
    local.write_bytes(loaded_db.read_bytes())
    assert _prune(runner, local, "--before", CUT, "--yes", socket=socket_path).exit_code == 0
    anchors = _ids_before_cut(local)

    _forward_state(loaded_db, 0)  # forwarding, nothing acknowledged by the centre yet
    old = _ids_before_cut(loaded_db)
    kept = _prune(runner, loaded_db, "--before", CUT, "--yes", socket=socket_path)
    assert kept.exit_code == 0, kept.output
    assert f"{len(old):,} of the older events are not in the central store yet" in kept.stdout
    assert _ids_before_cut(loaded_db) == old  # all of them exist nowhere else yet

    dropped = _prune(
        runner, loaded_db, "--before", CUT, "--include-unforwarded", "--yes", socket=socket_path
    )
    assert dropped.exit_code == 0, dropped.output
    assert "were never forwarded: the central store will not get" in dropped.stdout
    assert _ids_before_cut(loaded_db) == anchors
    assert _report(runner, loaded_db, CUT) == _report(runner, local, CUT)
