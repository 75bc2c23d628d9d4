"""Fork safety: children get a fresh buffer and thread; nothing is lost or sent twice."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

import uptake
from tests.sdk.conftest import ClientFactory
from tests.sdk.fake_daemon import FakeDaemon


def _wait_child(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_forked_child_tracks_with_its_own_buffer_and_thread(
    daemon: FakeDaemon, spool_dir: Path
) -> None:
    uptake.configure(socket=daemon.address, spool_dir=spool_dir, flush_interval=30.0)
    uptake.track("before_fork")  # buffered, not yet sent: it belongs to the parent
    assert uptake.stats().queued == 1
    pid = os.fork()
    if pid == 0:  # child: must never return into pytest
        code = 1
        try:
            fresh = uptake.stats().queued == 0 and uptake.default_client().processor._thread is None
            uptake.track("in_child", pid=os.getpid())
            delivered = uptake.flush(5.0) and uptake.stats().sent == 1
            code = 0 if (fresh and delivered) else 2
        finally:
            os._exit(code)
    assert _wait_child(pid) == 0
    uptake.track("after_fork")
    assert uptake.flush(5.0)
    names = Counter(daemon.features())
    assert names == {"before_fork": 1, "in_child": 1, "after_fork": 1}
    child_event = next(event for event in daemon.events() if event.name == "in_child")
    assert child_event.props == {"pid": pid}


def test_fork_while_the_worker_is_busy_does_not_deadlock(
    daemon: FakeDaemon, make_client: ClientFactory
) -> None:
    client = make_client(max_batch=10)
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            client.track("busy")

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        children = []
        for _ in range(5):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    client.track("child")
                    code = 0 if client.flush(5.0) else 3
                finally:
                    os._exit(code)
            children.append(pid)
        assert [_wait_child(pid) for pid in children] == [0] * 5
    finally:
        stop.set()
        thread.join()
    assert client.flush(5.0)
    assert Counter(daemon.features())["child"] == 5


def test_pid_check_covers_forks_without_hooks(
    daemon: FakeDaemon, make_client: ClientFactory
) -> None:
    client = make_client()
    client.track("x")
    assert client.flush(5.0)
    parent_buffer = client.processor.buffer
    parent_thread = client.processor._thread
    client.processor._pid = -1  # as if we were a child whose fork hooks never ran (uWSGI)
    client.track("y")  # not noticed on the hot path...
    assert client.flush(5.0)  # ...but flush() notices the new pid and starts over
    assert client.processor.buffer is not parent_buffer
    assert client.processor._thread is not parent_thread
    assert client.processor._pid == os.getpid()
    client.track("z")
    assert client.flush(5.0)
    assert daemon.features() == ["x", "y", "z"]  # the child's own calls are kept
    assert parent_thread is not None
    parent_thread.join(5)  # the "parent's" worker, orphaned by the simulation, exits


def _mp_child(address: str, spool_dir: str) -> None:
    uptake.configure(socket=address, spool_dir=spool_dir, flush_interval=30.0)
    uptake.track("from_multiprocessing", pid=os.getpid())
    # No flush: multiprocessing ends the child with os._exit(), which skips atexit.


def test_multiprocessing_children_flush_at_exit(daemon: FakeDaemon, spool_dir: Path) -> None:
    uptake.configure(socket=daemon.address, spool_dir=spool_dir)
    uptake.track("parent")
    context = multiprocessing.get_context("fork")
    processes = [
        context.Process(target=_mp_child, args=(daemon.address, str(spool_dir))) for _ in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    assert uptake.flush(5.0)
    assert Counter(daemon.features()) == {"parent": 1, "from_multiprocessing": 2}


_WSGI_APP = """
import os
import time

import uptake

uptake.configure(app="wsgi-test")
uptake.track("preloaded", pid=os.getpid())  # in the master, before the workers fork


def app(environ, start_response):
    uptake.identify(user="visitor")
    uptake.track("request", pid=os.getpid())
    time.sleep(0.02)  # keep a worker busy so concurrent requests spread over workers
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
"""


def _get(path: str) -> int | None:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(5)
            client.connect(path)
            client.sendall(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
            response = b""
            while chunk := client.recv(4096):
                response += chunk
    except OSError:
        return None
    head, _, body = response.partition(b"\r\n\r\n")
    return int(body) if head.startswith(b"HTTP/1.") and b" 200 " in head[:20] else None


def _get_into(path: str, results: list[int | None]) -> None:
    results.append(_get(path))


@pytest.mark.slow
def test_gunicorn_preload_workers_all_deliver(
    daemon: FakeDaemon, sock_dir: Path, tmp_path: Path, spool_dir: Path
) -> None:
    (tmp_path / "tracked_app.py").write_text(textwrap.dedent(_WSGI_APP))
    http_socket = str(sock_dir / "http.sock")
    env = {
        **os.environ,
        "UPTAKE_SOCKET": daemon.address,
        "UPTAKE_SPOOL_DIR": str(spool_dir),
        "UPTAKE_FLUSH_INTERVAL": "0.2",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--preload",
            "-w",
            "3",
            "-b",
            f"unix:{http_socket}",
            "--chdir",
            str(tmp_path),
            "--graceful-timeout",
            "10",
            "tracked_app:app",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    served: Counter[int] = Counter()
    try:
        deadline = time.monotonic() + 60
        while len(served) < 3 and time.monotonic() < deadline:
            results: list[int | None] = []
            threads = [
                threading.Thread(target=_get_into, args=(http_socket, results)) for _ in range(6)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            served.update(pid for pid in results if pid is not None)
            if not any(results):
                time.sleep(0.1)  # still booting
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            _, stderr = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            _, stderr = server.communicate()
    assert server.returncode == 0, stderr.decode()[-2000:]
    assert len(served) == 3, f"requests reached only workers {served}"
    assert not list(spool_dir.rglob("*.spool")), "everything should reach the running daemon"
    events = daemon.events()
    preloaded = [event for event in events if event.name == "preloaded"]
    assert len(preloaded) == 1, "the master's pre-fork event is sent once, by the master"
    master_pid = server.pid
    assert preloaded[0].props == {"pid": master_pid}
    requests = Counter(
        event.props["pid"] for event in events if event.name == "request" and event.props
    )
    assert requests == served, "every worker's events, each exactly once"
    assert all(event.source == "wsgi-test" for event in events)
