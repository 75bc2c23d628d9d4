"""`usage import`: JSON lines in, events stored once, bad lines named and skipped."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from hypothesis import assume, given
from typer.testing import CliRunner

from tests.cli._events import event_lines, write_lines
from tests.strategies import events
from uptake.protocol import MAX_EVENT_BYTES, Event
from uptake_aggregator.store.sqlite.storage import Storage
from uptake_cli.app import app
from uptake_cli.import_cmd import LineError, parse_line


def _stored(db: Path) -> int:
    async def count() -> int:
        storage = await Storage.open(db)
        try:
            return await storage.events_stored()
        finally:
            await storage.close()

    return anyio.run(count)


def _line(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields).encode()


# -- parse_line ----------------------------------------------------------------


def test_iso_and_microsecond_timestamps_give_the_same_event() -> None:
    iso = parse_line(_line({"ts": "2026-11-23T09:30:00.5Z", "kind": "login", "user": "u1"}))
    micros = parse_line(_line({"user": "u1", "kind": "login", "ts": 1795426200500000}))
    assert iso == micros  # same content, same derived id, whatever the key order
    offset = parse_line(_line({"ts": "2026-11-23T10:30:00.5+01:00", "kind": "login", "user": "u1"}))
    assert offset.ts == iso.ts
    naive = parse_line(_line({"ts": "2026-11-23T09:30:00.5", "kind": "login", "user": "u1"}))
    assert naive.ts == iso.ts  # no offset means UTC


def test_derived_ids_differ_when_content_differs() -> None:
    first = parse_line(_line({"ts": 10, "kind": "feature", "name": "a", "user": "u1"}))
    second = parse_line(_line({"ts": 10, "kind": "feature", "name": "b", "user": "u1"}))
    assert first.id != second.id
    assert first.id[:6] == second.id[:6]  # same time prefix: ids stay time-ordered


def test_explicit_ids_are_hex_or_uuid_text() -> None:
    hex_id = "0192f0c48a1e70008000000000000001"
    uuid_text = "0192f0c4-8a1e-7000-8000-000000000001"
    for given_id in (hex_id, uuid_text):
        event = parse_line(_line({"ts": 1, "kind": "login", "id": given_id}))
        assert event.id == bytes.fromhex(hex_id)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"kind": "login"}, "missing field 'ts'"),
        ({"ts": "yesterday", "kind": "login"}, "not ISO-8601"),
        ({"ts": -1, "kind": "login"}, "out of range"),
        ({"ts": True, "kind": "login"}, "not a boolean"),
        ({"ts": 1.5, "kind": "login"}, "integer microseconds"),
        ({"ts": "1960-01-01T00:00:00Z", "kind": "login"}, "before 1970"),
        ({"ts": 1, "kind": "bogus"}, "`$.kind`"),
        ({"ts": 1, "kind": "login", "user": "x" * 201}, "`$.user`"),
        ({"ts": 1, "kind": "login", "id": "abc"}, "not hex"),
        ({"ts": 1, "kind": "login", "id": "00ff"}, "16 expected"),
        ({"ts": 1, "kind": "login", "id": 5}, "32 hex digits"),
        ({"ts": 1, "kind": "login", "colour": "red"}, "unknown field(s) 'colour'"),
        ({"ts": 1, "kind": "seats", "value": 2**64}, "64 bits"),
        ({"ts": 1, "kind": "login", "props": {"big": 2**64}}, "props.big"),
        ({"ts": 1, "kind": "login", "props": {"k": [1]}}, "`$.props"),
        ({"ts": 1, "kind": "login", "props": {f"p{i}": "x" * 300 for i in range(32)}}, "8192"),
    ],
)
def test_bad_lines_say_what_is_wrong(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(LineError, match=None) as caught:
        parse_line(_line(fields))
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    ("line", "reason"),
    [(b"not json", "not valid JSON"), (b"[1, 2]", "expected a JSON object"), (b"\xff", "JSON")],
)
def test_lines_that_are_not_objects_are_refused(line: bytes, reason: str) -> None:
    with pytest.raises(LineError) as caught:
        parse_line(line)
    assert reason in str(caught.value)


def _as_json_line(event: Event) -> bytes:
    fields = msgspec.to_builtins(event)
    fields["id"] = event.id.hex()
    return json.dumps(fields, ensure_ascii=False).encode()


@given(event=events())
def test_any_valid_event_round_trips_through_a_json_line(event: Event) -> None:
    props = event.props or {}
    # JSON has no NaN or infinity; every other value must survive the trip.
    assume(not any(isinstance(v, float) and not math.isfinite(v) for v in props.values()))
    line = _as_json_line(event)
    if len(msgspec.msgpack.encode(event)) > MAX_EVENT_BYTES:
        with pytest.raises(LineError):
            parse_line(line)
        return
    assert parse_line(line) == event


# -- the command ---------------------------------------------------------------


def test_import_stores_every_line_once_even_when_run_twice(
    runner: CliRunner, isolated_env: dict[str, Path], tmp_path: Path
) -> None:
    lines = event_lines()
    source = write_lines(tmp_path / "events.jsonl", lines)
    first = runner.invoke(app, ["import", str(source)])
    assert first.exit_code == 0, first.output
    assert f"{len(lines):,} events stored, 0 already present, 0 lines rejected" in first.stdout
    assert _stored(isolated_env["db"]) == len(lines)

    again = runner.invoke(app, ["import", str(source)])
    assert again.exit_code == 0
    assert f"0 events stored, {len(lines):,} already present" in again.stdout
    assert _stored(isolated_env["db"]) == len(lines)


def test_bad_lines_are_reported_and_good_lines_kept(
    runner: CliRunner, isolated_env: dict[str, Path], tmp_path: Path
) -> None:
    good = {"ts": "2026-11-02T10:00:00Z", "kind": "login", "user": "u1"}
    source = write_lines(
        tmp_path / "mixed.jsonl",
        [good, "{broken", "", {"ts": 5, "kind": "nope"}, {**good, "user": "u2"}, "[]"],
    )
    result = runner.invoke(app, ["import", str(source), "--db", str(isolated_env["db"])])
    assert result.exit_code == 1
    assert "2 events stored, 0 already present, 3 lines rejected" in result.stdout
    assert "line 2: not valid JSON" in result.stderr
    assert "line 4: Invalid enum value 'nope'" in result.stderr
    assert "line 6: expected a JSON object" in result.stderr
    assert "line 3" not in result.stderr  # blank lines are not errors
    assert _stored(isolated_env["db"]) == 2


def test_many_lines_go_through_in_batches(
    runner: CliRunner, isolated_env: dict[str, Path], tmp_path: Path
) -> None:
    lines = [
        {"ts": 1_790_000_000_000_000 + i, "kind": "login", "user": f"u{i % 50}"}
        for i in range(12_345)
    ]
    source = write_lines(tmp_path / "many.jsonl", lines)
    result = runner.invoke(app, ["import", str(source)])
    assert result.exit_code == 0, result.output
    assert _stored(isolated_env["db"]) == 12_345


def test_missing_file_is_one_clear_line(
    runner: CliRunner, isolated_env: dict[str, Path], tmp_path: Path
) -> None:
    result = runner.invoke(app, ["import", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 1
    assert result.stderr.startswith("usage: error: ")
    assert "nope.jsonl" in result.stderr and len(result.stderr.splitlines()) == 1


def test_stdin_import(runner: CliRunner, isolated_env: dict[str, Path]) -> None:
    text = json.dumps({"ts": 1_790_000_000_000_000, "kind": "login", "user": "u1"}) + "\n"
    result = runner.invoke(app, ["import", "-"], input=text)
    assert result.exit_code == 0, result.output
    assert _stored(isolated_env["db"]) == 1
