"""`usage export`: JSON lines out that `usage import` reads back, each event exactly once."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.strategies import events
from uptake.protocol import Event
from uptake_aggregator.store.sqlite.outbox import EVENT_COLUMNS
from uptake_aggregator.store.sqlite.storage import Storage
from uptake_cli.app import app

DAY_US = 86_400_000_000


def _ingest(db: Path, batch: list[Event]) -> None:
    async def run() -> None:
        storage = await Storage.open(db)
        try:
            await storage.ingest([batch])
        finally:
            await storage.close()

    anyio.run(run)


def _rows(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        # Without the local sequence: it numbers the commits, which differ.
        return sorted(conn.execute(f"SELECT {EVENT_COLUMNS} FROM events").fetchall())


def _finite(event: Event) -> bool:
    return not any(
        isinstance(value, float) and not math.isfinite(value)
        for value in (event.props or {}).values()
    )


@given(st.lists(events().filter(_finite), max_size=15))
def test_export_then_import_elsewhere_stores_the_same_events(
    tmp_path_factory: pytest.TempPathFactory, stored: list[Event]
) -> None:
    base = tmp_path_factory.mktemp("export")
    source, copy, dump = base / "a.db", base / "b.db", base / "dump.jsonl"
    _ingest(source, stored)
    runner = CliRunner()
    exported = runner.invoke(app, ["export", "--db", str(source), "-o", str(dump)])
    assert exported.exit_code == 0, exported.output
    imported = runner.invoke(app, ["import", str(dump), "--db", str(copy)])
    assert imported.exit_code == 0, imported.output
    assert _rows(copy) == _rows(source)
    again = runner.invoke(app, ["import", str(dump), "--db", str(source)])
    assert "0 events stored" in again.stdout
    assert _rows(copy) == _rows(source)


def test_export_window_and_errors(tmp_path: Path) -> None:
    db = tmp_path / "u.db"
    day = 20_400 * DAY_US  # 2025-11-08
    _ingest(
        db,
        [
            Event(id=bytes([1] * 16), ts=day - 1, kind="login", user="before"),
            Event(id=bytes([2] * 16), ts=day, kind="login", user="inside"),
            Event(id=bytes([3] * 16), ts=day + DAY_US, kind="login", user="after"),
        ],
    )
    runner = CliRunner()
    result = runner.invoke(
        app, ["export", "--db", str(db), "--since", "2025-11-08", "--until", "2025-11-09"]
    )
    assert result.exit_code == 0, result.output
    assert '"user":"inside"' in result.stdout
    assert result.stdout.count("\n") == 1
    bad = runner.invoke(app, ["export", "--db", str(db), "--since", "yesterday"])
    assert bad.exit_code == 2
    missing = runner.invoke(app, ["export", "--db", str(tmp_path / "none.db")])
    assert missing.exit_code == 1
    assert "no database at" in missing.stderr
