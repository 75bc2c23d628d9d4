"""The spool and the event encoding: round trips, torn tails, corruption, locking, bounds."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import events
from uptake._build import build_events
from uptake._model import Event
from uptake._spool import MAGIC, Spool, encode_record, read_records
from uptake._stats import Counters
from uptake.spool import scan_records

_decode_event = msgspec.msgpack.Decoder(Event).decode

batches = st.lists(st.lists(events(), min_size=1, max_size=5), min_size=1, max_size=6)


def encoded(batch: list[Event]) -> list[bytes]:
    return [msgspec.msgpack.encode(event) for event in batch]


_NOW_US = time.time_ns() // 1000
# The SDK rejects events over a day ahead of its clock (as the daemon does): stay in the past.
past_events = events().map(lambda event: msgspec.structs.replace(event, ts=event.ts % _NOW_US))


@given(st.lists(past_events, max_size=30))
def test_events_round_trip_through_the_sdk_encoder(originals: list[Event]) -> None:
    counters = Counters()
    built = build_events(originals, "ignored-for-records", counters)
    assert counters.rejected == {}
    assert built.events == originals
    assert [_decode_event(raw) for raw in built.raw] == originals


@given(batches)
def test_batches_round_trip_through_the_spool(spooled: list[list[Event]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        spool = Spool(Path(directory), max_bytes=1 << 30)
        for batch in spooled:
            assert spool.append(encoded(batch))
        (only,) = list(Path(directory).glob("*.spool"))
        records = read_records(only.read_bytes())
        spool.close()
    assert [[_decode_event(raw) for raw in record] for record in records] == spooled


@given(batches, st.data())
def test_a_torn_tail_loses_only_the_torn_record(
    spooled: list[list[Event]], data: st.DataObject
) -> None:
    records = [encode_record(encoded(batch)) for batch in spooled]
    content = b"".join(records)
    cut = data.draw(st.integers(min_value=0, max_value=len(content)), label="cut")
    complete = 0
    position = 0
    for record in records:
        position += len(record)
        if position <= cut:
            complete += 1
    recovered = read_records(content[:cut])
    assert [[_decode_event(raw) for raw in record] for record in recovered] == spooled[:complete]


@given(batches, st.data())
def test_a_damaged_record_does_not_poison_the_others(
    spooled: list[list[Event]], data: st.DataObject
) -> None:
    records = [encode_record(encoded(batch)) for batch in spooled]
    victim = data.draw(st.integers(min_value=0, max_value=len(records) - 1), label="victim")
    damaged = bytearray(records[victim])
    spot = data.draw(st.integers(min_value=0, max_value=len(damaged) - 1), label="spot")
    damaged[spot] ^= 0xFF
    content = b"".join([*records[:victim], bytes(damaged), *records[victim + 1 :]])
    recovered = [[_decode_event(raw) for raw in record] for record in read_records(content)]
    expected = spooled[:victim] + spooled[victim + 1 :]
    assert recovered == expected


@given(batches, st.binary(max_size=40))
def test_a_torn_record_followed_by_more_records_is_skipped(
    spooled: list[list[Event]], junk: bytes
) -> None:
    # A writer killed mid-record, then a later writer appending to the same file.
    torn = encode_record(encoded(spooled[0]))[: max(1, len(junk))]
    content = torn + junk + b"".join(encode_record(encoded(batch)) for batch in spooled[1:])
    recovered = [[_decode_event(raw) for raw in record] for record in read_records(content)]
    assert recovered[-len(spooled[1:]) or len(recovered) :] == spooled[1:]


def test_garbage_is_not_a_record() -> None:
    assert read_records(MAGIC + b"\x00\x00\x00\x05" + b"\x00\x00\x00\x00" + b"12345") == []
    assert read_records(os.urandom(1000).replace(MAGIC, b"")) == []


def _raw(name: str) -> list[bytes]:
    return [msgspec.msgpack.encode(Event(id=b"i" * 16, ts=1, kind="feature", name=name))]


def test_claim_skips_files_locked_by_a_live_writer(tmp_path: Path) -> None:
    writer = Spool(tmp_path, max_bytes=1 << 20)
    assert writer.append(_raw("a"))
    replayer = Spool(tmp_path, max_bytes=1 << 20)
    assert list(replayer.claim()) == []  # flock conflict: the writer is alive
    writer.close()  # the writer "exits": its lock is released
    claim = replayer.claim()
    claimed = next(claim)
    assert claimed.records() == [_raw("a")]
    assert Spool._lock_orphan(claimed.path) is None  # held by this replayer now
    claimed.remove()
    assert list(claim) == []


def test_own_files_replay_in_order_and_new_appends_start_a_new_file(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append(_raw("first"))
    claimed = spool.claim()
    own = next(claimed)
    spool.append(_raw("second"))  # goes to a new file while the first is being replayed
    assert own.records() == [_raw("first")]
    own.remove()
    assert list(claimed) == []  # the new file is the current writer, not sealed yet
    assert spool.has_own()
    (second,) = list(spool.claim())
    assert second.records() == [_raw("second")]
    second.remove()
    assert not spool.has_own()
    assert list(tmp_path.glob("*.spool")) == []


def test_a_removed_file_is_not_replayed_twice(tmp_path: Path) -> None:
    writer = Spool(tmp_path, max_bytes=1 << 20)
    writer.append(_raw("a"))
    writer.close()
    path = next(tmp_path.glob("*.spool"))
    opened_before_removal = os.open(path, os.O_RDWR)
    first = Spool(tmp_path, max_bytes=1 << 20)
    claim = first.claim()
    next(claim).remove()
    claim.close()
    assert Spool._lock_orphan(path) is None
    os.close(opened_before_removal)


def test_append_refuses_past_the_byte_bound(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=300)
    accepted = sum(spool.append(_raw(f"n{i}")) for i in range(20))
    assert 0 < accepted < 20
    total = sum(path.stat().st_size for path in tmp_path.glob("*.spool"))
    assert total <= 300
    spool.close()


def test_spool_files_are_private(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "dir", max_bytes=1 << 20)
    spool.append(_raw("a"))
    (path,) = list((tmp_path / "dir").glob("*.spool"))
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "dir").stat().st_mode & 0o777 == 0o700
    spool.close()


@given(batches, st.data())
def test_every_damaged_byte_is_reported(spooled: list[list[Event]], data: st.DataObject) -> None:
    # uptake.spool.scan_records accounts for every byte: intact records plus the
    # damaged stretches it reports (which a replayer logs) make up the whole file.
    records = [encode_record(encoded(batch)) for batch in spooled]
    victim = data.draw(st.integers(min_value=0, max_value=len(records) - 1), label="victim")
    damaged = bytearray(records[victim])
    spot = data.draw(st.integers(min_value=0, max_value=len(damaged) - 1), label="spot")
    damaged[spot] ^= 0xFF
    content = b"".join([*records[:victim], bytes(damaged), *records[victim + 1 :]])
    cut = data.draw(st.integers(min_value=0, max_value=len(content)), label="cut")
    scan = scan_records(content[:cut])
    intact = sum(len(encode_record(record)) for record in scan.records)
    assert intact + scan.damaged_bytes == cut
    boundaries = {sum(len(record) for record in records[:index]) for index in range(victim + 1)}
    assert (scan.damaged_bytes == 0) == (cut in boundaries)
