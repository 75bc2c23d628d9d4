"""Parsing and storing the JSON lines of `usage import` (the command is in ``import_cmd``).

Kept apart from the command so that `usage` start-up, which builds every command, loads
neither msgspec's Structs nor the SDK package for commands that import nothing.
"""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, BinaryIO, Final

import msgspec

from uptake.protocol import MAX_EVENT_BYTES, Event, content_event_id
from uptake_cli._backend import EventWriter

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = ["ImportSummary", "LineError", "import_events", "parse_line"]

_FIELDS: Final = frozenset(Event.__struct_fields__)
_INT64: Final = range(-(2**63), 2**63)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_US: Final = timedelta(microseconds=1)
_BATCH: Final = 1000  # events per Batch frame / per ingest batch
_BATCHES_PER_WRITE: Final = 10  # batches per transaction (the daemon group-commits too)
_PROGRESS_EVERY: Final = 1000  # lines between progress-bar updates
_encode: Final = msgspec.msgpack.Encoder().encode


class LineError(ValueError):
    """A line that cannot become an event; the message says why."""


def _timestamp(value: Any) -> int:
    if isinstance(value, bool):
        raise LineError("ts must be integer microseconds or an ISO-8601 string, not a boolean")
    if isinstance(value, int):
        if not 0 <= value < 2**63:
            raise LineError(f"ts {value} is out of range (microseconds since 1970, >= 0)")
        return value
    if isinstance(value, str):
        text = value.strip()
        # Python 3.10's fromisoformat does not know the "Z" suffix.
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise LineError(f"ts {value!r} is not ISO-8601 (e.g. 2026-11-23T09:30:00Z)") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        micros = (moment - _EPOCH) // _ONE_US
        if micros < 0:
            raise LineError(f"ts {value!r} is before 1970")
        return micros
    raise LineError("ts must be integer microseconds or an ISO-8601 string")


def _event_id(value: Any) -> bytes:
    if not isinstance(value, str):
        raise LineError("id must be a string of 32 hex digits")
    try:
        raw = bytes.fromhex(value.replace("-", ""))
    except ValueError:
        raise LineError(f"id {value!r} is not hex (32 hex digits expected)") from None
    if len(raw) != 16:
        raise LineError(f"id {value!r} has {len(raw)} bytes, 16 expected (32 hex digits)")
    return raw


def _check_ints(fields: dict[str, Any]) -> None:
    # SQLite stores 64-bit integers; msgspec's int would accept more.
    value = fields.get("value")
    if isinstance(value, int) and value not in _INT64:
        raise LineError("value does not fit in 64 bits")
    props = fields.get("props")
    if isinstance(props, dict):
        for key, prop in props.items():
            if isinstance(prop, int) and prop not in _INT64:
                raise LineError(f"props.{key} does not fit in 64 bits")


def parse_line(line: bytes) -> Event:
    """Turn one JSON line into a validated ``Event``; raise ``LineError`` saying why not.

    >>> parse_line(b'{"ts": "2026-11-23T00:00:00Z", "kind": "login", "user": "u1"}').ts
    1795392000000000
    """
    try:
        fields = msgspec.json.decode(line)
    except msgspec.DecodeError as exc:
        raise LineError(f"not valid JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise LineError(f"expected a JSON object, got {type(fields).__name__}")
    unknown = sorted(set(fields) - _FIELDS)
    if unknown:
        raise LineError(f"unknown field(s) {', '.join(map(repr, unknown))}")
    if "ts" not in fields:
        raise LineError("missing field 'ts'")
    fields["ts"] = _timestamp(fields["ts"])
    _check_ints(fields)
    given_id = fields.pop("id", None)
    if given_id is not None:
        event_id = _event_id(given_id)
    else:
        content = {key: value for key, value in fields.items() if value is not None}
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        event_id = content_event_id(fields["ts"], canonical.encode())
    try:
        event = msgspec.convert({**fields, "id": event_id}, Event)
    except msgspec.ValidationError as exc:
        raise LineError(str(exc)) from None
    size = len(_encode(event))
    if size > MAX_EVENT_BYTES:
        raise LineError(f"event is {size} bytes encoded, over the {MAX_EVENT_BYTES}-byte limit")
    return event


class ImportSummary(msgspec.Struct):
    """What an import did: lines read, events stored new, duplicates, rejected lines."""

    lines: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str]] = msgspec.field(default_factory=list)


class _Importer:
    """Parses lines into batches and hands full groups to a writer thread.

    Parsing the next lines overlaps with storing the previous group (SQLite and the
    socket release the GIL), and at most one group is in flight, so memory stays bounded.
    """

    def __init__(self, writer: EventWriter, pool: ThreadPoolExecutor) -> None:
        self.summary = ImportSummary()
        self._writer = writer
        self._pool = pool
        self._pending: list[list[Event]] = [[]]
        self._in_flight: Future[list[tuple[int, int]]] | None = None

    def add(self, event: Event) -> None:
        self._pending[-1].append(event)
        if len(self._pending[-1]) >= _BATCH:
            if len(self._pending) >= _BATCHES_PER_WRITE:
                self.flush()
            else:
                self._pending.append([])

    def flush(self) -> None:
        batches = [batch for batch in self._pending if batch]
        self._pending = [[]]
        self._collect()
        if batches:
            self._in_flight = self._pool.submit(self._writer.write, batches)

    def finish(self) -> ImportSummary:
        self.flush()
        self._collect()
        return self.summary

    def _collect(self) -> None:
        if self._in_flight is not None:
            results, self._in_flight = self._in_flight.result(), None
            for accepted, duplicates in results:
                self.summary.stored += accepted
                self.summary.duplicates += duplicates


def import_events(
    handle: BinaryIO,
    writer: EventWriter,
    progress: Progress | None = None,
    total_bytes: int | None = None,
) -> ImportSummary:
    """Read JSON lines from ``handle``, store the good ones through ``writer``.

    Good lines are written in batches as they come, so a bad line costs only itself.
    """
    task = progress.add_task("importing", total=total_bytes) if progress else None
    unreported = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="uptake-import") as pool:
        importer = _Importer(writer, pool)
        for number, line in enumerate(handle, start=1):
            importer.summary.lines = number
            unreported += len(line)
            if number % _PROGRESS_EVERY == 0 and progress is not None and task is not None:
                progress.advance(task, unreported)
                unreported = 0
            if not line.strip():
                continue
            try:
                importer.add(parse_line(line))
            except LineError as exc:
                importer.summary.rejected.append((number, str(exc)))
        summary = importer.finish()
    if progress is not None and task is not None:
        progress.advance(task, unreported)
    return summary
