"""This process's spool: a crash-safe, bounded on-disk fallback for undeliverable batches.

The format, the layout and the locking rules are those of ``uptake.spool`` (shared with
the daemon, which adopts the files of processes that ended, and with ``usage spool``).
This module is the SDK worker's side: it appends records to its own file (holding its
lock), seals it for a replay, and claims its own and orphaned files to replay them.

Bounded: appends that would take the (per-daemon) directory over ``max_bytes`` are refused
(the caller counts them dropped as ``spool_full``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Generator
from pathlib import Path

from uptake.spool import (
    MAGIC,
    SUFFIX,
    SpoolFile,
    encode_record,
    lock_spool_file,
    read_records,
    write_address,
)

__all__ = ["MAGIC", "Spool", "SpoolFile", "encode_record", "read_records"]

_SUFFIX = SUFFIX


class Spool:
    """This process's view of the spool directory (used by the worker thread only)."""

    def __init__(self, directory: Path, max_bytes: int, address: str | None = None) -> None:
        self.directory = directory
        self.address = address
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
        if self.address is not None:
            write_address(self.directory, self.address)
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
        return lock_spool_file(path)

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
