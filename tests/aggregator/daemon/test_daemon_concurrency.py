"""Many clients at once; stalled, dripping and flooding clients never hold up the others."""

from __future__ import annotations

import collections
import contextlib
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess, RawConnection, make_events, stored_ids
from uptake.protocol import Batch, encode_frame

CLIENTS = 50
BATCHES_PER_CLIENT = 4
EVENTS_PER_BATCH = 250


@pytest.fixture(scope="module")
def busy_daemon() -> Iterator[DaemonProcess]:
    # Default timeouts (a started frame may take 30 s), so the stalled client stays
    # stalled for the whole test; a small queue so the flood meets backpressure.
    workdir = Path(tempfile.mkdtemp(prefix="up", dir="/tmp"))
    daemon = DaemonProcess(workdir, "--max-queued-events", "5000")
    try:
        yield daemon.start()
    finally:
        daemon.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def test_fifty_clients_while_others_stall(busy_daemon: DaemonProcess) -> None:
    daemon = busy_daemon
    stop = threading.Event()

    # A client stalled in the middle of a frame.
    stalled = RawConnection(daemon.socket)
    stalled.hello()
    stalled.send_raw(encode_frame(Batch(seq=1, events=make_events(100)))[:500])

    # A client that drips one byte at a time.
    def drip() -> None:
        frame = encode_frame(Batch(seq=1, events=make_events(100)))
        with contextlib.suppress(OSError), RawConnection(daemon.socket) as raw:
            raw.hello()
            for byte in frame:
                if stop.is_set():
                    return
                raw.send_raw(bytes([byte]))
                time.sleep(0.01)

    # A client that floods pipelined batches and reads its acks only at the end.
    flood_batches = [make_events(2000, start=1_690_000_000_000_000 + k * 10**10) for k in range(20)]

    def flood() -> None:
        with RawConnection(daemon.socket, timeout=60) as raw:
            raw.hello()
            for seq, batch in enumerate(flood_batches):
                raw.send(Batch(seq=seq, events=batch))
            for _ in flood_batches:
                raw.receive()

    sent: list[list[bytes]] = [[] for _ in range(CLIENTS)]
    failures: list[BaseException] = []

    def client(index: int) -> None:
        try:
            with daemon.client(timeout=60) as connection:
                for k in range(BATCHES_PER_CLIENT):
                    start = 1_700_000_000_000_000 + (index * 100 + k) * 10**9
                    batch = make_events(EVENTS_PER_BATCH, start=start, users=5)
                    ack = connection.send(batch)
                    assert ack.accepted == EVENTS_PER_BATCH
                    sent[index].extend(event.id for event in batch)
        except BaseException as exc:
            failures.append(exc)

    background = [threading.Thread(target=drip), threading.Thread(target=flood)]
    workers = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    try:
        for thread in background + workers:
            thread.start()
        for thread in workers:
            thread.join(120)
        assert not failures, failures[:3]
        assert not any(thread.is_alive() for thread in workers)
        background[1].join(120)
        with daemon.client() as status_client:
            # 50 finished clients are gone; the stalled and dripping ones are still there.
            assert status_client.status()["clients_connected"] >= 3
    finally:
        stop.set()
        stalled.close()
        for thread in background:
            thread.join(30)

    counts = collections.Counter(stored_ids(daemon.db))
    expected = [event_id for ids in sent for event_id in ids]
    assert len(expected) == CLIENTS * BATCHES_PER_CLIENT * EVENTS_PER_BATCH
    assert all(counts[event_id] == 1 for event_id in expected)
    assert all(counts[event.id] == 1 for batch in flood_batches for event in batch)
