"""Adopting orphaned spool files: events an SDK process spooled and never got to replay.

A cron job or CLI run that tracked while the daemon was down spools its events and ends;
no later SDK process may ever run on that host. So the daemon itself looks, on start and
every ``interval`` seconds, in every spool root it knows (the platformdirs default, the
environment's ``UPTAKE_SPOOL_DIR``, ``--spool-dir``) for the namespace directories of its
own addresses (its Unix socket, and ``tcp://127.0.0.1:PORT`` when it listens on TCP), and
stores the files whose writer is gone.

The rules are those of every replayer (``uptake.spool``): a file is taken only with its
exclusive lock (never a live writer's file, never one another replayer holds), its events
keep their ids so the store drops what was already stored, and the file is unlinked only
after every event in it was committed. A torn or corrupt file is adopted up to and beyond
the damage (reading resumes at the next record); the bytes skipped are logged. Each file
is logged once when adopted; events the daemon refuses (invalid, far in the future) are
counted and logged, never stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

import anyio
import msgspec

from uptake.paths import default_spool_dirs
from uptake.protocol import MAX_EVENT_BYTES, Event
from uptake.spool import (
    SpoolFile,
    SpoolScan,
    lock_spool_file,
    namespace_dir,
    spool_file_paths,
)
from uptake_aggregator.daemon.writer import BatchWriter
from uptake_aggregator.errors import DaemonError
from uptake_aggregator.units import DAY_US

__all__ = ["DEFAULT_ADOPT_INTERVAL", "AdoptionStats", "SpoolAdopter", "spool_roots"]

#: Seconds between two looks at the spool roots.
DEFAULT_ADOPT_INTERVAL: Final = 2.0
#: Events handed to the writer at once (a spool file may hold 64 MiB).
_CHUNK_EVENTS: Final = 5000

_log = logging.getLogger("uptake_aggregator.daemon.adoption")
_decode_event = msgspec.msgpack.Decoder(Event).decode


@dataclass
class AdoptionStats:
    """Totals since start, and what the last look found waiting (``usage daemon status``)."""

    #: Looks at the spool directories since start.
    scans: int = 0
    adopted_files: int = 0
    adopted_events: int = 0
    #: Adopted events the store already had (an SDK had sent them before it lost the Ack).
    duplicates: int = 0
    #: Events in adopted files that the daemon refused (invalid or too far ahead).
    refused_events: int = 0
    #: Adopted files that had torn or corrupt stretches (logged, skipped).
    damaged_files: int = 0
    #: At the last look: files of live writers (or held by another replayer), and the
    #: age in seconds of the oldest of them (None when there were none).
    waiting_files: int = 0
    oldest_waiting_s: float | None = None

    def body(self, directories: Sequence[Path]) -> dict[str, object]:
        """The ``spool`` object of the status body."""
        oldest = self.oldest_waiting_s
        return {
            "dirs": [str(directory) for directory in directories],
            **asdict(self),
            "oldest_waiting_s": None if oldest is None else round(oldest, 1),
        }


def spool_roots(extra: Sequence[Path] = ()) -> tuple[Path, ...]:
    """The spool roots a daemon adopts from: the defaults (cache dir, env) and ``extra``."""
    roots: dict[Path, None] = {}
    for root in [*default_spool_dirs(), *extra]:
        roots[root.absolute()] = None
    return tuple(roots)


class SpoolAdopter:
    """Stores the orphaned spool files meant for this daemon; see the module docstring."""

    def __init__(
        self,
        roots: Sequence[Path],
        addresses: Sequence[str],
        writer: BatchWriter,
        *,
        interval: float = DEFAULT_ADOPT_INTERVAL,
    ) -> None:
        unique: dict[Path, None] = {}
        for root in roots:
            for address in addresses:
                unique[namespace_dir(root, address)] = None
        #: The namespace directories looked in: each root x each of this daemon's addresses.
        self.directories = list(unique)
        self._writer = writer
        self._interval = interval
        self.stats = AdoptionStats()

    async def run(self) -> None:
        """Look now and every ``interval`` seconds, until cancelled."""
        while True:
            await self.adopt_once()
            await anyio.sleep(self._interval)

    async def adopt_once(self) -> int:
        """Adopt every file whose writer is gone; return the number of files adopted."""
        adopted = 0
        waiting = 0
        oldest: float | None = None
        for directory in self.directories:
            for path in await anyio.to_thread.run_sync(spool_file_paths, directory):
                held = await anyio.to_thread.run_sync(lock_spool_file, path)
                if held is None:
                    mtime = _mtime(path)
                    if mtime is not None:
                        waiting += 1
                        oldest = mtime if oldest is None else min(oldest, mtime)
                    continue
                try:
                    if await self._adopt(held):
                        adopted += 1
                finally:
                    held.release()
        self.stats.scans += 1
        self.stats.waiting_files = waiting
        self.stats.oldest_waiting_s = None if oldest is None else max(0.0, time.time() - oldest)
        return adopted

    async def _adopt(self, held: SpoolFile) -> bool:
        """Store one locked file's events, then unlink it; False if storing failed."""
        scan: SpoolScan = await anyio.to_thread.run_sync(held.scan)
        events, refused = _decode(scan)
        accepted = duplicates = 0
        try:
            for start in range(0, len(events), _CHUNK_EVENTS):
                pending = await self._writer.submit(events[start : start + _CHUNK_EVENTS])
                result = await pending.wait()
                accepted += result.accepted
                duplicates += result.duplicates
        except DaemonError as exc:
            # Stopping, or the transaction failed: the file stays for the next look (what
            # was stored meanwhile is dropped as duplicate then).
            _log.warning("adopting spool file %s failed (%s); retrying later", held.path, exc)
            return False
        # Counted before the unlink: its events are committed, and whoever sees the file
        # gone must see it adopted in the status (the unlink runs in a thread, so the
        # counters would otherwise lag behind it).
        stats = self.stats
        stats.adopted_files += 1
        stats.adopted_events += accepted + duplicates
        stats.duplicates += duplicates
        stats.refused_events += refused
        await anyio.to_thread.run_sync(held.remove)
        _log.info(
            "adopted spool file %s: %d events stored, %d already stored, %d refused",
            held.path,
            accepted,
            duplicates,
            refused,
        )
        if scan.damaged:
            stats.damaged_files += 1
            _log.warning(
                "spool file %s was damaged: %d bytes skipped at %s (torn or corrupt records;"
                " the intact records before and after them were stored)",
                held.path,
                scan.damaged_bytes,
                ", ".join(f"offset {offset} (+{length})" for offset, length in scan.damaged),
            )
        return True


def _decode(scan: SpoolScan) -> tuple[list[Event], int]:
    """The valid events of a scan, and how many were refused (undecodable, oversize, future)."""
    limit = time.time_ns() // 1000 + DAY_US
    events: list[Event] = []
    refused = 0
    for record in scan.records:
        for raw in record:
            try:
                event = _decode_event(raw)
            except msgspec.DecodeError:
                refused += 1
                continue
            if len(raw) > MAX_EVENT_BYTES or event.ts > limit:
                refused += 1
                continue
            events.append(event)
    return events, refused


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None
