"""uWSGI prefork workers store nothing twice, with or without ``--py-call-osafterfork``.

uWSGI forks its workers from C; without that option Python's at-fork hooks never run in
them, and each worker used to inherit (and send, with fresh ids) what the master had
buffered. The SDK chains ``uwsgi.post_fork_hook`` instead. Real uwsgi (the ``test``
extra), real daemon, real HTTP requests.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess, stored_ids

pytestmark = pytest.mark.slow

UWSGI = Path(sys.executable).with_name("uwsgi")
if not UWSGI.exists():
    pytest.skip("uwsgi is not installed (pip install -e '.[test]')", allow_module_level=True)

_APP = textwrap.dedent(
    """
    import os
    import uptake

    # In the master, before the workers fork: buffered (the worker thread sleeps for a
    # minute), so every forked worker inherits these 50 calls.
    uptake.configure(app="uwsgi-app", flush_interval=60.0)
    for number in range(50):
        uptake.track("pre_fork", n=number)

    def application(environ, start_response):
        uptake.track("request", pid=os.getpid())
        delivered = uptake.flush(10.0)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{os.getpid()} {delivered} {uptake.stats().sent}".encode()]
    """
)


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="upw", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def get(url: str) -> str:
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(url, timeout=15) as answer:
                body: bytes = answer.read()
                return body.decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.parametrize("options", [[], ["--py-call-osafterfork"]], ids=["plain", "osafterfork"])
def test_uwsgi_workers_store_nothing_twice(workdir: Path, options: list[str]) -> None:
    daemon = DaemonProcess(workdir).start()
    (workdir / "app.py").write_text(_APP)
    port = free_port()
    env = {
        **daemon.env,
        "UPTAKE_SOCKET": str(daemon.socket),
        "UPTAKE_SPOOL_DIR": str(workdir / "spool"),
    }
    server = subprocess.Popen(
        [
            str(UWSGI),
            "--master",
            "--processes",
            "2",
            "--enable-threads",
            "--http-socket",
            f"127.0.0.1:{port}",
            "--wsgi-file",
            str(workdir / "app.py"),
            "--die-on-term",
            *options,
        ],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        answers = [get(f"http://127.0.0.1:{port}/").split() for _ in range(12)]
    finally:
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.communicate(timeout=15)
        if server.poll() is None:
            server.kill()
            server.communicate()
        daemon.stop()
    ids = stored_ids(daemon.db)
    assert len(ids) == len(set(ids))
    conn = sqlite3.connect(daemon.db)
    try:
        counts = dict(conn.execute("SELECT name, COUNT(*) FROM events GROUP BY name").fetchall())
    finally:
        conn.close()
    assert counts.get("request") == 12
    sent_by_worker: dict[str, list[int]] = {}
    for pid, delivered, sent in answers:
        assert delivered == "True"
        sent_by_worker.setdefault(pid, []).append(int(sent))
    # Each worker sent its own requests' events only, not the master's buffered calls.
    for sent in sent_by_worker.values():
        assert sent == list(range(1, len(sent) + 1))
    # The master's 50 buffered calls: at most once (its worker thread was asleep), never
    # once per worker.
    assert counts.get("pre_fork", 0) <= 50
