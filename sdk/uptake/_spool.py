"""Crash-safe, bounded on-disk spool for batches the daemon could not take.

Layout: one directory per daemon address (``daemon-<crc32 of the address>`` under
``UPTAKE_SPOOL_DIR`` or the platformdirs cache dir, so events are only ever replayed to the
daemon they were meant for), mode 0700, holding files named
``<time_ns>-<pid>-<random>.spool`` (mode 0600). Sorting the names sorts the files by
creation, so replay keeps each process's order.

Each file is a sequence of records::

    b"UPs1" | payload length (u32 BE) | CRC32 of payload (u32 BE) | payload

where the payload is a msgpack array of msgpack-encoded events (one batch, ids included).
A process killed mid-write leaves a torn last record: its length runs past the end of
the file or its CRC does not match, and the reader skips it. A damaged record in the
middle is skipped too, the reader resynchronising at the next magic, so one bad write
never poisons the records before or after it.

Locking: a writer holds ``flock(LOCK_EX)`` on its own file for as long as it owns it, and
a replayer takes the same lock with ``LOCK_NB``; so a file is replayed by one process at
a time and never while its writer is alive. A dead process's lock vanishes with it, so
its file becomes an orphan any later client replays. After every record of a file is
acknowledged, the replayer unlinks it while still holding the lock; a replayer that
opened the path just before sees ``st_nlink == 0`` and skips it. Events keep their ids in
the spool, so a record resent after a lost ``Ack`` is dropped by the daemon as duplicate.

Bounded: appends that would take the (per-daemon) directory over ``max_bytes`` are refused
(the caller counts them dropped as ``spool_full``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import time
import zlib
from collections.abc import Generator
from pathlib import Path
from typing import Final

import msgspec

__all__ = ["MAGIC", "Spool", "SpoolFile", "encode_record", "read_records"]

MAGIC: Final = b"UPs1"
_HEADER: Final = struct.Struct(">4sII")
_SUFFIX: Final = ".spool"
_encoder: Final = msgspec.msgpack.Encoder()
_records_decoder: Final = msgspec.msgpack.Decoder(list[msgspec.Raw])


def encode_record(raw_events: list[bytes]) -> bytes:
    """Return one spool record holding ``raw_events`` (encoded events)."""
    payload = _encoder.encode([msgspec.Raw(raw) for raw in raw_events])
    return _HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def read_records(content: bytes) -> list[list[bytes]]:
    """Return the intact records of a spool file's ``content``, in order.

    A torn tail (header or payload cut short) ends the scan; a record whose CRC or
    msgpack is bad is skipped and the scan resumes at the next ``MAGIC``.
    """
    records: list[list[bytes]] = []
    offset = 0
    size = len(content)
    while offset + _HEADER.size <= size:
        magic, length, crc = _HEADER.unpack_from(content, offset)
        if magic != MAGIC:
            offset = _resync(content, offset + 1)
            continue
        start = offset + _HEADER.size
        end = start + length
        if end > size:
            # Either the torn tail, or a corrupt length: look for a later record.
            offset = _resync(content, offset + 1)
            continue
        payload = content[start:end]
        if zlib.crc32(payload) != crc:
            offset = _resync(content, offset + 1)
            continue
        try:
            raws = _records_decoder.decode(payload)
        except msgspec.DecodeError:
            offset = _resync(content, offset + 1)
            continue
        records.append([bytes(raw) for raw in raws])
        offset = end
    return records


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

    def records(self) -> list[list[bytes]]:
        """Read the file's intact records."""
        chunks = []
        os.lseek(self.fd, 0, os.SEEK_SET)
        while True:
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        return read_records(b"".join(chunks))

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


class Spool:
    """This process's view of the spool directory (used by the worker thread only)."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._writer: SpoolFile | None = None
        self._sealed: list[SpoolFile] = []
        self._used: int | None = None

    # -- writing -------------------------------------------------------------------
    def append(self, raw_events: list[bytes]) -> bool:
        """Append one batch durably; False when over the size bound (``spool_full``).

        Raises ``OSError`` when the directory cannot be written (``spool_error``).
        """
        record = encode_record(raw_events)
        if self._used is None:
            self._used = self._scan_used()
        if self._used + len(record) > self.max_bytes:
            return False
        if self._writer is None:
            self._writer = self._create()
        view = memoryview(record)
        while view:
            written = os.write(self._writer.fd, view)
            view = view[written:]
        os.fsync(self._writer.fd)
        self._used += len(record)
        return True

    def _create(self) -> SpoolFile:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}-{os.urandom(3).hex()}{_SUFFIX}"
        path = self.directory / name
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return SpoolFile(path, fd, own=True)

    def _scan_used(self) -> int:
        total = 0
        try:
            with os.scandir(self.directory) as entries:
                for entry in entries:
                    if entry.name.endswith(_SUFFIX):
                        with contextlib.suppress(OSError):
                            total += entry.stat().st_size
        except OSError:
            pass
        return total

    # -- replaying -----------------------------------------------------------------
    def has_own(self) -> bool:
        """True when this process spooled records that are not yet acknowledged."""
        self._sealed = [spool_file for spool_file in self._sealed if spool_file.fd >= 0]
        return bool(self._sealed) or self._writer is not None

    def seal(self) -> None:
        """Stop appending to the current file so it can be replayed (appends start a new one)."""
        if self._writer is not None:
            self._sealed.append(self._writer)
            self._writer = None

    def claim(self) -> Generator[SpoolFile, None, None]:
        """Yield the files to replay, oldest first, each locked by this process.

        Own sealed files come with the lock already held; other files (orphans of dead
        processes) are yielded only if their lock is free. The caller must ``remove()``
        or ``release()`` each orphan; own files it may keep for a later attempt.
        """
        self.seal()
        own = {spool_file.path.name: spool_file for spool_file in self._sealed}
        try:
            names = sorted(name for name in os.listdir(self.directory) if name.endswith(_SUFFIX))
        except OSError:
            names = []
        names = sorted(set(names) | set(own))
        for name in names:
            if name in own:
                spool_file = own[name]
                if spool_file.fd < 0:
                    continue
                yield spool_file
                if spool_file.fd < 0:
                    self._sealed.remove(spool_file)
                    self._used = None  # re-measure on the next append
                continue
            orphan = self._lock_orphan(self.directory / name)
            if orphan is not None:
                try:
                    yield orphan
                finally:
                    if orphan.fd >= 0:
                        orphan.release()
                self._used = None

    @staticmethod
    def _lock_orphan(path: Path) -> SpoolFile | None:
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

    def close(self) -> None:
        """Release every file this process holds (records stay on disk for a later replay)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        for spool_file in self._sealed:
            spool_file.release()
        self._sealed = []

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's files without touching their locks."""
        if self._writer is not None:
            self._writer.forget()
            self._writer = None
        for spool_file in self._sealed:
            spool_file.forget()
        self._sealed = []
        self._used = None
