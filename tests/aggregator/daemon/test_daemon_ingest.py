"""Ingest and queries through a real daemon: acks after commit, duplicates, reports."""

from __future__ import annotations

import collections
import importlib.util
import os
import stat

import pytest

from tests.support.daemon import DaemonProcess, RawConnection, make_events, stored_ids
from uptake.client import DaemonClient, DaemonUnavailableError, QueryError
from uptake.protocol import Ack, Batch, ErrorFrame, Query, ReportFilters, Result, Welcome


def test_batch_is_acked_and_stored(daemon: DaemonProcess) -> None:
    events = make_events(500, start=1_700_000_000_000_000)
    with daemon.client() as client:
        ack = client.send(events)
    assert (ack.accepted, ack.duplicates) == (500, 0)
    # The ack came after the commit: a separate read-only connection sees every event.
    stored = set(stored_ids(daemon.db))
    assert {event.id for event in events} <= stored


def test_resent_batch_counts_duplicates_and_stores_once(daemon: DaemonProcess) -> None:
    events = make_events(300, start=1_700_100_000_000_000)
    with daemon.client() as client:
        first = client.send(events)
        again = client.send(events)
        mixed = client.send(events[:100] + make_events(50, start=1_700_200_000_000_000))
        repeated_inside = client.send(events[:10] * 3)
    assert (first.accepted, first.duplicates) == (300, 0)
    assert (again.accepted, again.duplicates) == (0, 300)
    assert (mixed.accepted, mixed.duplicates) == (50, 100)
    assert (repeated_inside.accepted, repeated_inside.duplicates) == (0, 30)
    counts = collections.Counter(stored_ids(daemon.db))
    assert all(counts[event.id] == 1 for event in events)


def test_pipelined_batches_are_acked_in_order(daemon: DaemonProcess) -> None:
    batches = [make_events(200, start=1_700_300_000_000_000 + k * 10**9) for k in range(20)]
    with RawConnection(daemon.socket) as raw:
        assert isinstance(raw.hello(), Welcome)
        for seq, batch in enumerate(batches):
            raw.send(Batch(seq=seq, events=batch))
        acks = [raw.receive() for _ in batches]
    assert [ack.seq for ack in acks if isinstance(ack, Ack)] == list(range(20))
    assert all(isinstance(ack, Ack) and ack.accepted == 200 for ack in acks)
    stored = set(stored_ids(daemon.db))
    assert all(event.id in stored for batch in batches for event in batch)


def test_empty_batch_is_acked(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        ack = client.send([])
    assert (ack.accepted, ack.duplicates) == (0, 0)


def test_status_reports_events_clients_and_db(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        client.send(make_events(10, start=1_700_400_000_000_000))
        body = client.status()
    assert body["events_stored"] == len(set(stored_ids(daemon.db)))
    assert body["clients_connected"] >= 1
    assert body["db_bytes"] > 0
    assert body["uptime_s"] >= 0
    assert body["protocol"] == 1
    assert isinstance(body["version"], str)
    assert body["socket"] == str(daemon.socket)
    assert body["pid"] == daemon.process.pid if daemon.process else False


def test_socket_and_pidfile_are_private(daemon: DaemonProcess) -> None:
    assert stat.S_IMODE(os.stat(daemon.socket).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(daemon.pidfile).st_mode) == 0o600
    assert int(daemon.pidfile.read_text()) == daemon.process.pid if daemon.process else False


def test_refused_query_keeps_the_connection(daemon: DaemonProcess) -> None:
    with RawConnection(daemon.socket) as raw:
        raw.hello()
        raw.send(Query(report="usage", filters=ReportFilters(since="not a date")))
        answer = raw.receive()
        assert isinstance(answer, ErrorFrame)
        assert answer.code in ("bad_query", "internal")
        raw.send(Query(report="status"))
        assert isinstance(raw.receive(), Result)


@pytest.mark.skipif(
    importlib.util.find_spec("uptake_aggregator.metrics") is None,
    reason="metrics engine not installed",
)
def test_usage_query_matches_build_report(daemon: DaemonProcess) -> None:
    from uptake_aggregator.metrics import build_report

    with daemon.client() as client:
        client.send(make_events(200))
        filters = ReportFilters()
        via_daemon = client.query("usage", filters)
        with pytest.raises(QueryError):
            client.query("usage", {"since": "2026-13-45"})
        # The connection survives a refused query.
        assert client.query("usage", {"user": "user3"})["users"]
    assert via_daemon == build_report(daemon.db, filters)


def test_client_reports_missing_daemon(short_tmp: object) -> None:
    with pytest.raises(DaemonUnavailableError, match="no uptake daemon"):
        DaemonClient(os.path.join(str(short_tmp), "none.sock")).status()
