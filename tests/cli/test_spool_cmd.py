"""`usage spool status|replay`: what waits in the spool, and sending it now."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import uptake
from tests.support.daemon import DaemonProcess, stored_ids
from uptake_cli.app import app

pytestmark = pytest.mark.slow


def spool_while_down(socket_path: Path, spool: Path, count: int) -> None:
    """A client tracks while no daemon runs and shuts down: its spool is an orphan."""
    client = uptake.Client(socket=str(socket_path), spool_dir=spool, max_batch=50)
    for number in range(count):
        client.track("offline", n=number)
    assert not client.shutdown(0.3)
    assert client.stats().spooled == count


def test_status_then_replay_stores_every_event_once(
    runner: CliRunner, socket_path: Path, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    daemon = DaemonProcess(socket_path.parent, "--no-adopt")
    spool_while_down(daemon.socket, spool, 120)
    status = runner.invoke(app, ["spool", "status", "--spool-dir", str(spool), "--json"])
    assert status.exit_code == 0, status.output
    (row,) = json.loads(status.stdout)
    assert row["address"] == str(daemon.socket)
    assert (row["events"], row["live_files"], row["damaged_bytes"]) == (120, 0, 0)
    assert row["files"] >= 1 and row["bytes"] > 0 and row["oldest_age_s"] is not None
    table = runner.invoke(app, ["spool", "status", "--spool-dir", str(spool)])
    assert str(daemon.socket) in table.stdout and "120 events" in table.stdout
    try:
        daemon.start()
        args = ["--socket", str(daemon.socket), "--spool-dir", str(spool)]
        replayed = runner.invoke(app, ["spool", "replay", *args])
        assert replayed.exit_code == 0, replayed.output
        assert "120 events" in replayed.stdout
        again = runner.invoke(app, ["spool", "replay", *args])
        assert "replayed 0 files" in again.stdout
    finally:
        daemon.stop()
    ids = stored_ids(daemon.db)
    assert len(ids) == len(set(ids)) == 120
    empty = runner.invoke(app, ["spool", "status", "--spool-dir", str(spool)])
    assert "the spool is empty" in empty.stdout


def test_replay_without_a_daemon_says_what_to_do(
    runner: CliRunner, socket_path: Path, tmp_path: Path
) -> None:
    spool_while_down(socket_path, tmp_path / "spool", 5)
    result = runner.invoke(
        app,
        ["spool", "replay", "--socket", str(socket_path), "--spool-dir", str(tmp_path / "spool")],
    )
    assert result.exit_code == 1
    assert "usage daemon start" in result.output
    assert list((tmp_path / "spool").rglob("*.spool")), "nothing was removed"
