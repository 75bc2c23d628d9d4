"""Run part of a report in a forked child process, on the second core.

A report is CPU-bound Python over SQLite rows, and one process uses one core: a second
connection in a thread measured no faster (the GIL and SQLite's global allocator mutex
serialise the two). So ``build_report(parallel=True)`` computes the session
figures, about half of a large report, in a child process while the parent
computes the rest.

Rules that keep this safe:

- No SQLite connection is open across the fork (SQLite forbids using one in a child):
  the report closes its connection, forks, and both sides open their own.
- Only a single-threaded process forks (``can_fork``): the CLI, or the daemon's report
  worker process. A process with other threads computes serially.
- Both sides read the ``events`` counter inside their read transactions; when a writer
  committed in between, the snapshots differ and the parent computes the part itself,
  so the report always comes from one committed state.
- The child never returns into the caller's code: it writes its answer to a pipe and
  ends with ``os._exit``, whatever happens (no atexit handlers, no buffered output of
  the parent flushed twice). Any failure of the child just means the parent computes
  the part itself; a parent that fails kills and reaps the child (``abandon``).

Example::

    child = ForkedPart.start(compute_part, PartStruct)   # no connection open
    ...                                                  # the parent's own part
    answer = child.result()                              # None: compute it here
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from typing import Final, Generic, NoReturn, TypeVar

import msgspec

__all__ = ["ForkedPart", "can_fork"]

_T = TypeVar("_T")
_MAX_ANSWER_BYTES: Final = 256 * 1024 * 1024


def can_fork() -> bool:
    """True when forking a helper is safe and useful here.

    Needs ``os.fork``, more than one usable core, and a single-threaded process (forking
    a process with other threads can leave the child holding their locks).
    """
    if not hasattr(os, "fork") or threading.active_count() > 1:
        return False
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return cores > 1


class ForkedPart(Generic[_T]):
    """A computation running in a forked child; ``result`` collects it (or None)."""

    def __init__(self, pid: int, reader: int, answer_type: type[_T]) -> None:
        self._pid = pid
        self._reader = reader
        self._answer_type = answer_type

    @classmethod
    def start(cls, compute: Callable[[], _T], answer_type: type[_T]) -> ForkedPart[_T] | None:
        """Fork a child that runs ``compute``; None when the fork itself failed.

        ``compute``'s value must be msgpack-encodable as ``answer_type`` (msgspec).
        """
        reader, writer = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(reader)
            os.close(writer)
            return None
        if pid == 0:  # the child: never returns
            os.close(reader)
            _run_child(compute, writer)
        os.close(writer)
        return cls(pid, reader, answer_type)

    def result(self) -> _T | None:
        """Wait for the child; its value, or None when it failed in any way."""
        chunks: list[bytes] = []
        size = 0
        try:
            while chunk := os.read(self._reader, 1 << 20):
                chunks.append(chunk)
                size += len(chunk)
                if size > _MAX_ANSWER_BYTES:
                    return None
        finally:
            os.close(self._reader)
            _, status = os.waitpid(self._pid, 0)
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
            return None
        try:
            return msgspec.msgpack.decode(b"".join(chunks), type=self._answer_type)
        except msgspec.MsgspecError:
            return None

    def abandon(self) -> None:
        """Stop waiting: kill the child and reap it (the parent failed or was interrupted)."""
        with contextlib.suppress(OSError):
            os.kill(self._pid, signal.SIGKILL)
        os.close(self._reader)
        os.waitpid(self._pid, 0)


def _run_child(compute: Callable[[], object], writer: int) -> NoReturn:
    code = 1
    # Any failure (even KeyboardInterrupt) ends the child with code 1: the parent then
    # computes the part itself.
    with contextlib.suppress(BaseException):
        answer = msgspec.msgpack.encode(compute())
        view = memoryview(answer)
        while view:
            view = view[os.write(writer, view) :]
        code = 0
    os._exit(code)  # no atexit handlers, no flush of the parent's buffered output
