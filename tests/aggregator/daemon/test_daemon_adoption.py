"""The daemon adopts orphaned spool files for its own address, and only those.

Real daemons (``tests.support.daemon``) looking every 0.2 s; spool files are written by
real SDK processes, or through the public ``uptake.spool`` format for damaged ones.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.support.daemon import DaemonProcess, make_events, stored_ids
from uptake.spool import encode_record, namespace_dir, write_address

pytestmark = pytest.mark.slow

_TRACKER = textwrap.dedent(
    """
    import sys
    import uptake

    socket_path, count = sys.argv[1], int(sys.argv[2])
    uptake.configure(app="cron", socket=socket_path, exit_timeout=0.3, max_batch=100)
    for number in range(count):
        uptake.track("nightly", n=number)
    # no flush, no shutdown: the exit handler spools what the absent daemon cannot take
    """
)


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="upa", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll until ``predicate`` holds (False after ``timeout``; no timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def adopting_daemon(workdir: Path, spool: Path, name: str = "d") -> DaemonProcess:
    """A daemon (not started) on ``workdir/name`` that adopts from ``spool`` every 0.2 s."""
    home = workdir / name
    home.mkdir()
    return DaemonProcess(home, "--adopt-interval", "0.2", env={"UPTAKE_SPOOL_DIR": str(spool)})


def spool_status(daemon: DaemonProcess) -> dict[str, Any]:
    with daemon.client(timeout=10.0) as client:
        spool: dict[str, Any] = client.status()["spool"]
    return spool


def track_without_daemon(socket_path: Path, spool: Path, count: int) -> None:
    env = {**os.environ, "UPTAKE_SPOOL_DIR": str(spool)}
    done = subprocess.run(
        [sys.executable, "-c", _TRACKER, str(socket_path), str(count)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def spool_files(spool: Path) -> list[Path]:
    return sorted(spool.rglob("*.spool"))


def write_spool_file(directory: Path, address: str, content: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    write_address(directory, address)
    path = directory / f"{time.time_ns():020d}-1-abcdef.spool"
    path.write_bytes(content)
    return path


def encoded(count: int, start: int) -> list[bytes]:
    return [msgspec.msgpack.encode(event) for event in make_events(count, start=start)]


def test_a_short_lived_process_s_spool_is_stored_by_the_daemon_alone(workdir: Path) -> None:
    spool = workdir / "spool"
    daemon = adopting_daemon(workdir, spool)
    track_without_daemon(daemon.socket, spool, 750)
    assert spool_files(spool), "the tracker spooled at exit"
    try:
        daemon.start()
        assert wait_for(lambda: len(stored_ids(daemon.db)) == 750, timeout=10.0)
        assert wait_for(lambda: spool_files(spool) == [])
        status = spool_status(daemon)
        assert status["adopted_events"] == 750 and status["adopted_files"] >= 1
        assert str(namespace_dir(spool, str(daemon.socket))) in status["dirs"]
    finally:
        daemon.stop()
    ids = stored_ids(daemon.db)
    assert len(ids) == len(set(ids)) == 750
    assert daemon.log_text().count("adopted spool file") == status["adopted_files"]


def test_two_daemons_never_adopt_each_other_s_spool(workdir: Path) -> None:
    spool = workdir / "spool"
    first = adopting_daemon(workdir, spool, "first")
    second = adopting_daemon(workdir, spool, "second")
    track_without_daemon(first.socket, spool, 120)
    files = spool_files(spool)
    assert files
    try:
        second.start()
        assert wait_for(lambda: spool_status(second)["scans"] >= 3)
        assert spool_files(spool) == files
        assert stored_ids(second.db) == []
        first.start()
        assert wait_for(lambda: len(stored_ids(first.db)) == 120)
        assert stored_ids(second.db) == []
    finally:
        first.stop()
        second.stop()


def test_a_live_writer_s_file_is_never_touched(workdir: Path) -> None:
    spool = workdir / "spool"
    daemon = adopting_daemon(workdir, spool)
    address = str(daemon.socket.absolute())
    path = write_spool_file(
        namespace_dir(spool, address), address, encode_record(encoded(10, start=10**15))
    )
    fd = os.open(path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as the SDK writer holds its file while it lives
    try:
        daemon.start()
        assert wait_for(lambda: spool_status(daemon)["scans"] >= 3)
        status = spool_status(daemon)
        assert (status["waiting_files"], status["adopted_files"]) == (1, 0)
        assert status["oldest_waiting_s"] is not None
        assert path.exists() and stored_ids(daemon.db) == []
        os.close(fd)  # the writer ends: its file is an orphan now
        fd = -1
        assert wait_for(lambda: len(stored_ids(daemon.db)) == 10)
        assert wait_for(lambda: not path.exists())
    finally:
        if fd >= 0:
            os.close(fd)
        daemon.stop()


def test_torn_and_corrupt_files_are_adopted_up_to_the_damage_and_logged(workdir: Path) -> None:
    spool = workdir / "spool"
    daemon = adopting_daemon(workdir, spool)
    address = str(daemon.socket.absolute())
    directory = namespace_dir(spool, address)
    base = 10**15
    first, second, third = (encode_record(encoded(20, base + n * 10**8)) for n in range(3))
    corrupt = bytearray(second)
    corrupt[len(corrupt) // 2] ^= 0xFF  # a flipped byte: its CRC no longer matches
    # intact, corrupt, intact, garbage, then a torn last record (a writer killed mid-write)
    write_spool_file(
        directory,
        address,
        first + bytes(corrupt) + third + b"garbage!" + first[: len(first) // 2],
    )
    try:
        daemon.start()
        assert wait_for(lambda: spool_status(daemon)["adopted_files"] == 1)
        status = spool_status(daemon)
    finally:
        daemon.stop()
    assert status["damaged_files"] == 1
    assert len(stored_ids(daemon.db)) == 40  # the first and third records
    log = daemon.log_text()
    assert "was damaged" in log and "bytes skipped" in log
    assert spool_files(spool) == []
