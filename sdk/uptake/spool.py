"""The on-disk spool's format and locks: shared by the SDK, the daemon and ``usage spool``.

The SDK spools batches the daemon could not take (``uptake._spool``); the daemon adopts
the files of processes that ended (``uptake_aggregator.daemon.adoption``); ``usage spool``
shows and replays what waits. All three read and lock the files through this module, so
the format and the locking rules live in one place (docs/protocol.md, "The spool").

Layout: under a spool root (``UPTAKE_SPOOL_DIR`` or ``<cache dir>/uptake/spool``), one
directory per daemon address, ``daemon-<crc32 of the address, 8 hex digits>`` (mode 0700),
holding an ``address`` file (the address in UTF-8, for humans and ``usage spool``) and
files named ``<time_ns>-<pid>-<random>.spool`` (mode 0600); sorting the names sorts the
files by creation. Each file is a sequence of records::

    b"UPs1" | payload length (u32 BE) | CRC32 of payload (u32 BE) | payload

where the payload is a msgpack array of msgpack-encoded events (§2 ``Event`` maps, ids
included). A writer killed mid-write leaves a torn last record; a damaged record is
skipped and reading resumes at the next ``MAGIC``. ``scan_records`` says which byte
ranges were skipped so that a reader can log them: nothing is lost silently.

Locking: a writer holds ``flock(LOCK_EX)`` on its own file for as long as it owns it. A
replayer (an SDK process, the daemon, ``usage spool replay``) takes the same lock with
``LOCK_NB`` (``lock_spool_file``): a file is replayed by one process at a time and never
while its writer is alive (a dead process's lock vanishes with it). After every record of
a file is acknowledged the replayer unlinks it while still holding the lock; a replayer
that opened the path just before sees ``st_nlink == 0`` and skips it. Events keep their
ids, so a record sent twice is stored once (the daemon drops duplicates by id).

Example::

    directory = namespace_dir(Path("/tmp/spool"), "/run/user/1000/uptake/uptake.sock")
    for path in spool_file_paths(directory):
        held = lock_spool_file(path)      # None: a live writer's file, or already gone
        if held is not None:
            scan = held.scan()            # scan.records: list of batches of encoded events
            ...                           # store them, then held.remove()
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import msgspec

__all__ = [
    "ADDRESS_FILE",
    "MAGIC",
    "SUFFIX",
    "ReplayOutcome",
    "SpoolFile",
    "SpoolScan",
    "SpoolSummary",
    "encode_record",
    "lock_spool_file",
    "namespace_dir",
    "namespace_dirs",
    "read_address",
    "read_records",
    "replay_orphans",
    "scan_records",
    "spool_file_paths",
    "spool_namespace",
    "summarize",
    "write_address",
]

MAGIC: Final = b"UPs1"
SUFFIX: Final = ".spool"
#: The file in each namespace directory that names its daemon address.
ADDRESS_FILE: Final = "address"
_NAMESPACE_PREFIX: Final = "daemon-"
_HEADER: Final = struct.Struct(">4sII")
_encoder: Final = msgspec.msgpack.Encoder()
_records_decoder: Final = msgspec.msgpack.Decoder(list[msgspec.Raw])


def spool_namespace(address: str) -> str:
    """The spool subdirectory name for one daemon address (``daemon-<crc32>``).

    Apps on one host share the spool root but may talk to different daemons; spooled
    events must only ever be replayed to the daemon they were meant for.

    >>> spool_namespace("/tmp/up/d.sock")[:7]
    'daemon-'
    """
    return f"{_NAMESPACE_PREFIX}{zlib.crc32(address.encode()):08x}"


def namespace_dir(root: Path, address: str) -> Path:
    """The directory under spool ``root`` holding the files meant for ``address``."""
    return root / spool_namespace(address)


def namespace_dirs(root: Path) -> list[Path]:
    """Every daemon namespace directory under ``root``, sorted (none if it does not exist)."""
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    return [root / name for name in names if name.startswith(_NAMESPACE_PREFIX)]


def write_address(directory: Path, address: str) -> None:
    """Record which daemon address ``directory`` spools for (best effort, idempotent)."""
    path = directory / ADDRESS_FILE
    if path.exists():
        return
    with contextlib.suppress(OSError):
        temporary = directory / f".{ADDRESS_FILE}.{os.getpid()}"
        temporary.write_text(address, encoding="utf-8")
        os.replace(temporary, path)


def read_address(directory: Path) -> str | None:
    """The daemon address a namespace directory spools for; None when not recorded."""
    try:
        return (directory / ADDRESS_FILE).read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def spool_file_paths(directory: Path) -> list[Path]:
    """The spool files of one namespace directory, oldest first."""
    try:
        names = sorted(name for name in os.listdir(directory) if name.endswith(SUFFIX))
    except OSError:
        return []
    return [directory / name for name in names]


def encode_record(raw_events: list[bytes]) -> bytes:
    """Return one spool record holding ``raw_events`` (msgpack-encoded events)."""
    payload = _encoder.encode([msgspec.Raw(raw) for raw in raw_events])
    return _HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


@dataclass
class SpoolScan:
    """The intact records of a spool file and the byte ranges skipped as damaged."""

    #: Each record: the encoded events of one batch, in order.
    records: list[list[bytes]] = field(default_factory=list)
    #: ``(offset, length)`` of every damaged or torn stretch that was skipped.
    damaged: list[tuple[int, int]] = field(default_factory=list)

    @property
    def events(self) -> int:
        """Events in the intact records."""
        return sum(len(record) for record in self.records)

    @property
    def damaged_bytes(self) -> int:
        """Bytes skipped as damaged."""
        return sum(length for _, length in self.damaged)


def scan_records(content: bytes) -> SpoolScan:
    """Read a spool file's ``content``: its intact records and where it was damaged.

    A torn tail (header or payload cut short) or a record whose length, CRC or msgpack
    is bad is skipped; the scan resumes at the next ``MAGIC``.
    """
    scan = SpoolScan()
    offset = 0
    size = len(content)
    bad_from = -1  # start of the damaged stretch being skipped

    def skip_to(start: int) -> int:
        nonlocal bad_from
        if bad_from < 0:
            bad_from = start - 1
        return _resync(content, start)

    while offset + _HEADER.size <= size:
        magic, length, crc = _HEADER.unpack_from(content, offset)
        if magic != MAGIC:
            offset = skip_to(offset + 1)
            continue
        start = offset + _HEADER.size
        end = start + length
        if end > size:
            # Either the torn tail, or a corrupt length: look for a later record.
            offset = skip_to(offset + 1)
            continue
        payload = content[start:end]
        if zlib.crc32(payload) != crc:
            offset = skip_to(offset + 1)
            continue
        try:
            raws = _records_decoder.decode(payload)
        except msgspec.DecodeError:
            offset = skip_to(offset + 1)
            continue
        if bad_from >= 0:
            scan.damaged.append((bad_from, offset - bad_from))
            bad_from = -1
        scan.records.append([bytes(raw) for raw in raws])
        offset = end
    if bad_from < 0 and offset < size:
        bad_from = offset  # a tail too short for a header
    if bad_from >= 0:
        scan.damaged.append((bad_from, size - bad_from))
    return scan


def read_records(content: bytes) -> list[list[bytes]]:
    """Return the intact records of a spool file's ``content``, in order."""
    return scan_records(content).records


def _resync(content: bytes, start: int) -> int:
    found = content.find(MAGIC, start)
    return len(content) if found < 0 else found


class SpoolFile:
    """A spool file this process holds the exclusive lock on."""

    def __init__(self, path: Path, fd: int, own: bool) -> None:
        self.path = path
        self.fd = fd
        self.own = own
        #: Numbers of the records the daemon acknowledged while this process held the file.
        self.acked: set[int] = set()

    def content(self) -> bytes:
        """The file's bytes."""
        chunks = []
        os.lseek(self.fd, 0, os.SEEK_SET)
        while True:
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def scan(self) -> SpoolScan:
        """Read the file's intact records and where it is damaged."""
        return scan_records(self.content())

    def records(self) -> list[list[bytes]]:
        """Read the file's intact records."""
        return self.scan().records

    def size(self) -> int:
        """Bytes in the file."""
        return os.fstat(self.fd).st_size

    def remove(self) -> None:
        """Delete the file (every record acknowledged), then release the lock."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self.release()

    def release(self) -> None:
        """Close the file, which releases the lock."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def forget(self) -> None:
        """Drop the descriptor after fork without unlocking: the lock is the parent's."""
        # Closing our copy is safe: the lock lives on the open file description, which
        # the parent still references. Only flock(LOCK_UN) would release it.
        self.release()


def lock_spool_file(path: Path) -> SpoolFile | None:
    """Take the exclusive lock of a spool file whose writer is gone.

    None when its writer (or another replayer) holds it, or it was already replayed and
    removed. The caller must ``remove()`` or ``release()`` the file.
    """
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_nlink == 0:
            raise BlockingIOError("already replayed and removed")
    except OSError:
        os.close(fd)
        return None
    return SpoolFile(path, fd, own=False)


def _is_locked(path: Path) -> bool | None:
    """True while a writer or replayer holds the file; None when it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        # Shared and non-blocking: fails only against an exclusive holder, and is let go
        # at once (a replayer that tries meanwhile simply tries again on its next round).
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


@dataclass(frozen=True)
class SpoolSummary:
    """What waits in one namespace directory (``usage spool status``)."""

    directory: Path
    #: The daemon address, when recorded (None for directories written before it was).
    address: str | None
    files: int
    events: int
    bytes: int
    #: Seconds since the oldest file was last written; None without files.
    oldest_age_s: float | None
    #: Files whose writer is alive (a running process, or a replay in progress).
    live_files: int
    #: Bytes skipped as damaged (torn or corrupt records).
    damaged_bytes: int


def summarize(root: Path) -> list[SpoolSummary]:
    """Summarize every namespace directory under spool ``root`` (reads, never locks long)."""
    summaries: list[SpoolSummary] = []
    now = time.time()
    for directory in namespace_dirs(root):
        files = events = size = live = damaged = 0
        oldest: float | None = None
        for path in spool_file_paths(directory):
            try:
                content = path.read_bytes()
                mtime = path.stat().st_mtime
            except OSError:
                continue  # replayed and removed meanwhile
            scan = scan_records(content)
            files += 1
            events += scan.events
            size += len(content)
            damaged += scan.damaged_bytes
            if _is_locked(path):
                live += 1
            oldest = mtime if oldest is None else min(oldest, mtime)
        summaries.append(
            SpoolSummary(
                directory=directory,
                address=read_address(directory),
                files=files,
                events=events,
                bytes=size,
                oldest_age_s=None if oldest is None else max(0.0, now - oldest),
                live_files=live,
                damaged_bytes=damaged,
            )
        )
    return summaries


@dataclass
class ReplayOutcome:
    """What ``replay_orphans`` did."""

    files: int = 0
    events: int = 0
    #: Files left alone: their writer is alive (or another replayer holds them).
    live_files: int = 0
    damaged_bytes: int = 0


def replay_orphans(directory: Path, send: Callable[[list[bytes]], None]) -> ReplayOutcome:
    """Send every orphaned file of one namespace directory, oldest first, then unlink it.

    ``send`` takes one record (the encoded events of one batch) and returns once the
    daemon acknowledged it, or raises: the file is then kept (its lock released) and the
    exception propagates; records already sent are dropped as duplicates next time.
    """
    outcome = ReplayOutcome()
    for path in spool_file_paths(directory):
        held = lock_spool_file(path)
        if held is None:
            if path.exists():
                outcome.live_files += 1
            continue
        try:
            scan = held.scan()
            for record in scan.records:
                send(record)
            held.remove()
        finally:
            held.release()
        outcome.files += 1
        outcome.events += scan.events
        outcome.damaged_bytes += scan.damaged_bytes
    return outcome
