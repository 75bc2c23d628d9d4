"""The batch processor (``uptake._processor``): hot-path thresholds, bounds, the drain."""

from __future__ import annotations

import math
import threading
import tracemalloc
from typing import Any

import uptake
from tests.sdk.conftest import ClientFactory
from tests.sdk.fake_daemon import FakeDaemon


def test_flood_past_max_queue_drops_and_counts_without_blocking(
    spool_dir: object, sock_dir: object
) -> None:
    # No daemon, and the worker is not started, so nothing drains the buffer.
    client = uptake.Client(socket="/nonexistent/x.sock", max_queue=500, max_batch=100, spool=False)
    client.processor.wake_at = 0  # keep every call on the slow path with no worker
    client.processor._thread = threading.Thread()  # pretend started: the buffer can only fill up
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(50_000):
            client.track("flood", i=i)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(client.processor.buffer) == 500
    # 500 buffered calls take ~0.2 MB; keeping all 50 000 would take ~20 MB.
    assert grown < 2_000_000
    stats = client.stats()
    assert stats.dropped_by_reason == {"queue_full": 49_500}
    assert stats.queued == 500
    client.processor._thread = None
    client.processor._closed = True


def test_a_batch_taken_during_the_slow_path_still_counts_against_max_queue(
    spool_dir: object, sock_dir: object
) -> None:
    # The race behind an occasional 2,500-of-2,000 flood, made deterministic: the worker
    # takes and stages a 500-call batch between the slow path's first read of what it
    # has taken and the slow path's write of the new threshold.
    client = uptake.Client(socket="/nonexistent/x.sock", max_queue=2000, max_batch=500, spool=False)
    client.processor._thread = threading.Thread()  # pretend started: no real worker drains
    client.processor.wake_at = 500
    taken_reads = iter([0])  # the first read sees nothing taken, later ones the batch
    client.processor._taken = lambda: next(taken_reads, 500)  # type: ignore[method-assign]
    try:
        for i in range(10_000):
            client.track("flood", i=i)
    finally:
        client.processor._thread = None
        client.processor._closed = True
    assert len(client.processor.buffer) + 500 <= 2000
    assert client.stats().dropped_by_reason["queue_full"] == 10_000 - 1500


class _StagingDelivery:
    """Stages without sending; host calls run while each batch is staged (the race)."""

    def __init__(self, client: uptake.Client, staged: int) -> None:
        self.client = client
        self.staged = staged

    def stage(self, built: Any) -> None:
        self.staged += len(built)
        for i in range(1000):  # the host keeps calling while the worker builds
            self.client.track("during_build", i=i)

    def send_staged(self, deadline: float) -> bool:
        return False


def test_calls_made_while_the_worker_builds_stay_within_max_queue(
    spool_dir: object, sock_dir: object
) -> None:
    # A full buffer at the max_batch threshold, with 1,500 of 2,000 already staged: the
    # worker takes the last 500. Calls made meanwhile must see no room, not max_batch.
    client = uptake.Client(socket="/nonexistent/x.sock", max_queue=2000, max_batch=500, spool=False)
    client.processor._thread = threading.Thread()  # pretend started: the test plays the worker
    client.processor.wake_at = 500
    delivery = _StagingDelivery(client, staged=1500)
    real_delivery, client.processor._delivery = client.processor._delivery, delivery  # type: ignore[assignment]
    try:
        for i in range(500):
            client.track("before", i=i)
        client.processor._drain(math.inf)
    finally:
        client.processor._delivery = real_delivery
        client.processor._thread = None
        client.processor._closed = True
    assert delivery.staged == 2000
    assert delivery.staged + len(client.processor.buffer) <= 2000 + 1
    assert client.stats().dropped_by_reason["queue_full"] >= 999


def test_flood_with_a_live_worker_stays_bounded(
    daemon: FakeDaemon, make_client: ClientFactory
) -> None:
    client = make_client(max_queue=2000, max_batch=500)
    daemon.mode = "stall"  # nothing is acknowledged: the worker is stuck waiting
    largest = largest_total = 0
    for i in range(50_000):
        client.track("flood", i=i)
        largest = max(largest, len(client.processor.buffer))
        # Batches built ahead while the daemon stalls count against max_queue too. Staged
        # is read first: the worker may move a batch from the buffer to staged between
        # the two reads, and buffer-then-staged would count that batch twice.
        largest_total = max(
            largest_total, client.processor._delivery.staged + len(client.processor.buffer)
        )
    assert largest <= 2000 + 1
    assert largest_total <= 2000 + 1
    stats = client.stats()
    assert stats.dropped_by_reason.get("queue_full", 0) > 0
    assert stats.queued + stats.dropped + stats.sent + stats.spooled <= 50_000


def test_calls_without_props_buffer_none_and_send_none(make_client: ClientFactory) -> None:
    client = make_client()
    client.processor.wake_at = 10  # keep the calls in the buffer to look at them
    client.track("a")
    client.track("b", plan="pro")
    assert [item[3] for item in client.processor.buffer] == [None, {"plan": "pro"}]
