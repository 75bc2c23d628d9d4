"""Fixtures for metrics tests: ingest events through the real Storage into a tmp db."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import pytest

from uptake.protocol import Event
from uptake_aggregator.store.sqlite.storage import Storage

Ingest = Callable[[Path, Sequence[Sequence[Event]]], None]


def ingest_batches(path: Path, batches: Sequence[Sequence[Event]]) -> None:
    """Ingest the batches through ``Storage.ingest``, one call per batch."""

    async def run() -> None:
        storage = await Storage.open(path, synchronous="NORMAL")
        try:
            for batch in batches:
                await storage.ingest([batch])
        finally:
            await storage.close()

    anyio.run(run)


@pytest.fixture
def ingest() -> Ingest:
    return ingest_batches
