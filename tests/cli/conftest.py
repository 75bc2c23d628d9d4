"""Fixtures for the `usage` CLI tests: the sample §6 report, a CLI runner, tmp paths."""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.cli._events import event_lines, write_lines

SAMPLE_PATH = Path(__file__).with_name("sample_report.json")


@pytest.fixture(scope="session")
def _sample_report() -> dict[str, Any]:
    report: dict[str, Any] = json.loads(SAMPLE_PATH.read_text(encoding="utf-8"))
    return report


@pytest.fixture
def sample_report(_sample_report: dict[str, Any]) -> dict[str, Any]:
    """A fresh copy of tests/cli/sample_report.json (60 days, 6 accounts, 30 users)."""
    return copy.deepcopy(_sample_report)


@pytest.fixture
def runner() -> CliRunner:
    """A typer CLI runner that keeps stderr apart from stdout."""
    return CliRunner()


@pytest.fixture
def socket_path() -> Iterator[Path]:
    """A short Unix socket path under /tmp where no daemon listens (removed afterwards)."""
    directory = tempfile.mkdtemp(prefix="up")
    try:
        yield Path(directory) / "uptake.sock"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def isolated_env(
    tmp_path: Path, socket_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Path]:
    """Point every UPTAKE_* path at tmp, so no test touches the user's real data."""
    paths = {"db": tmp_path / "uptake.db", "socket": socket_path}
    monkeypatch.setenv("UPTAKE_DB", str(paths["db"]))
    monkeypatch.setenv("UPTAKE_SOCKET", str(paths["socket"]))
    monkeypatch.setenv("UPTAKE_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("UPTAKE_LOG_DIR", str(tmp_path / "log"))
    # No uptake.toml from the user's config dir (goals would change the reports).
    monkeypatch.delenv("UPTAKE_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return paths


@pytest.fixture
def loaded_db(runner: CliRunner, isolated_env: dict[str, Path], tmp_path: Path) -> Path:
    """A database holding the tiny product of tests.cli._events, imported with the CLI.

    It is the database ``isolated_env`` points UPTAKE_DB at.
    """
    from uptake_cli.app import app

    source = write_lines(tmp_path / "events.jsonl", event_lines())
    result = runner.invoke(app, ["import", str(source)])
    assert result.exit_code == 0, result.output
    return isolated_env["db"]
