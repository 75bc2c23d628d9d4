"""Background checkpoints: commits reach the database file without the writer copying them."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import anyio
import pytest

from tests.aggregator.store.test_storage import DAY, T0
from tests.support.daemon import make_events
from uptake_aggregator.store.sqlite.checkpointer import Checkpointer
from uptake_aggregator.store.sqlite.storage import Storage, connect_readonly


def _checkpointer_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "uptake-checkpointer"]


def test_commits_reach_the_database_file_while_the_storage_stays_open(tmp_path: Path) -> None:
    path = tmp_path / "u.db"

    async def run() -> tuple[int, int]:
        storage = await Storage.open(path)
        try:
            empty = path.stat().st_size
            for round_ in range(5):
                await storage.ingest([make_events(2000, start=T0 + round_ * 2_000_000_000)])
            # Without a checkpoint the file would keep its size: new pages live in the WAL
            # until copied (the writer's automatic checkpoint waits for ~40 MiB of them).
            deadline = time.monotonic() + 10
            while path.stat().st_size <= empty and time.monotonic() < deadline:
                await anyio.sleep(0.01)
            return empty, path.stat().st_size
        finally:
            await storage.close()

    empty, grown = anyio.run(run)
    assert grown > empty
    assert not _checkpointer_threads()
    conn = connect_readonly(path)
    try:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 10_000
    finally:
        conn.close()


def test_a_checkpointer_that_cannot_open_the_database_only_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="uptake_aggregator.store.sqlite.checkpointer")
    checkpointer = Checkpointer(tmp_path / "missing" / "u.db", synchronous="FULL")
    checkpointer.nudge()
    checkpointer.close()
    checkpointer.close()  # idempotent
    assert "the writer will" in caplog.text
    assert not _checkpointer_threads()


def test_ingest_is_unaffected_when_background_checkpoints_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A checkpointer whose thread gave up: the writer's own automatic checkpoint remains.
    monkeypatch.setattr(Checkpointer, "_run", lambda self: None)
    path = tmp_path / "u.db"

    async def run() -> None:
        storage = await Storage.open(path)
        try:
            for round_ in range(3):
                [result] = await storage.ingest([make_events(500, start=T0 + round_ * DAY)])
                assert result.accepted == 500
        finally:
            await storage.close()

    anyio.run(run)
    conn = connect_readonly(path)
    try:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 1500
    finally:
        conn.close()
