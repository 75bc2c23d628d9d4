"""The group-commit writer: coalescing, backpressure, failures and draining (in process)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import anyio
import pytest

from tests.support.daemon import make_events
from uptake.protocol import Event
from uptake_aggregator.daemon.writer import BatchWriter, PendingBatch
from uptake_aggregator.errors import DaemonError
from uptake_aggregator.store.sqlite.storage import IngestResult, Storage


class GatedStorage:
    """Records every ``ingest`` round; each round waits until the test opens the gate."""

    def __init__(self, fail: bool = False) -> None:
        self.rounds: list[list[int]] = []
        self.gate = anyio.Event()
        self.rows_gate = anyio.Event()
        self.rows_gate.set()  # tests that look at the two halves of a transaction clear it
        self.entered = anyio.Event()
        self.fail = fail

    async def ingest(
        self,
        batches: Sequence[Sequence[Event]],
        *,
        written: Callable[[], None] | None = None,
    ) -> list[IngestResult]:
        self.rounds.append([len(batch) for batch in batches])
        self.entered.set()
        await self.rows_gate.wait()
        if written is not None:
            written()  # the rows are written; the COMMIT (the gate below) begins
        await self.gate.wait()
        if self.fail:
            raise OSError("disk full")
        return [IngestResult(accepted=len(batch), duplicates=0) for batch in batches]


def _writer(storage: GatedStorage, **limits: Any) -> BatchWriter:
    return BatchWriter(cast(Storage, storage), **limits)


def test_batches_queued_during_a_commit_share_the_next_one() -> None:
    async def scenario() -> None:
        storage = GatedStorage()
        writer = _writer(storage)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(writer.run)
            first = await writer.submit(make_events(10))
            await storage.entered.wait()  # the first round is committing...
            later = [await writer.submit(make_events(5)) for _ in range(6)]  # ...these queue
            storage.gate.set()
            results = [await pending.wait() for pending in [first, *later]]
            writer.close()
        assert storage.rounds == [[10], [5] * 6]
        assert [r.accepted for r in results] == [10] + [5] * 6

    anyio.run(scenario, backend="asyncio")


def test_full_queue_makes_submitters_wait() -> None:
    async def scenario() -> None:
        storage = GatedStorage()
        writer = _writer(storage, max_queued_events=100, max_round_events=100)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(writer.run)
            await writer.submit(make_events(100))
            await storage.entered.wait()  # round 1 holds those 100 events; queue empty again
            await writer.submit(make_events(100))  # fills the queue
            blocked: list[PendingBatch] = []

            async def submit_more() -> None:
                blocked.append(await writer.submit(make_events(50)))

            tasks.start_soon(submit_more)
            await anyio.wait_all_tasks_blocked()
            assert blocked == []  # waiting for room, not buffered
            assert writer.queued_events == 100
            storage.gate.set()  # the writer takes the next round: room again
            with anyio.fail_after(10):
                while not blocked:
                    await anyio.sleep(0.001)
            await blocked[0].wait()
            writer.close()
        assert storage.rounds == [[100], [100], [50]]

    anyio.run(scenario, backend="asyncio")


def test_a_batch_larger_than_the_queue_is_still_taken() -> None:
    async def scenario() -> None:
        storage = GatedStorage()
        storage.gate.set()
        writer = _writer(storage, max_queued_events=10, max_round_events=10)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(writer.run)
            result = await (await writer.submit(make_events(25))).wait()
            writer.close()
        assert result.accepted == 25

    anyio.run(scenario, backend="asyncio")


def test_failed_commit_fails_its_batches_and_the_writer_goes_on() -> None:
    async def scenario() -> None:
        storage = GatedStorage(fail=True)
        storage.gate.set()
        writer = _writer(storage)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(writer.run)
            with pytest.raises(DaemonError, match="disk full"):
                await (await writer.submit(make_events(3))).wait()
            storage.fail = False
            assert (await (await writer.submit(make_events(4))).wait()).accepted == 4
            writer.close()

    anyio.run(scenario, backend="asyncio")


def test_close_drains_the_queue_then_refuses_new_batches() -> None:
    async def scenario() -> None:
        storage = GatedStorage()
        writer = _writer(storage)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(writer.run)
            pending = [await writer.submit(make_events(7)) for _ in range(3)]
            writer.close()
            with pytest.raises(DaemonError, match="shutting down"):
                await writer.submit(make_events(1))
            storage.gate.set()
        # run() returned only after everything queued before close() was committed.
        assert all(p.result is not None and p.result.accepted == 7 for p in pending)

    anyio.run(scenario, backend="asyncio")


def test_connections_wait_while_rows_are_written_not_while_they_commit() -> None:
    async def scenario() -> None:
        storage = GatedStorage()
        storage.rows_gate = anyio.Event()
        writer = _writer(storage)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(writer.run)
            pending = await writer.submit(make_events(5))
            await storage.entered.wait()
            # Rows being written: a connection may not decode (it would take the GIL).
            with anyio.move_on_after(0.05) as waiting:
                await writer.wait_idle()
            assert waiting.cancelled_caught
            storage.rows_gate.set()
            # The COMMIT runs without the GIL: decoding the next frames may overlap it.
            with anyio.fail_after(5):
                await writer.wait_idle()
            assert pending.result is None  # not committed yet: no Ack can go out
            storage.gate.set()
            assert (await pending.wait()).accepted == 5
            writer.close()

    anyio.run(scenario, backend="asyncio")
