"""End to end: the integrations under real servers against a real daemon.

gunicorn (3 workers x 4 threads) serves the plain WSGI app and the Django example site,
uvicorn the ASGI app; a real prefork ``celery worker`` runs tasks. Many concurrent
requests from several users must store every event once, with the right user and
account, nothing leaking to the next request (anonymous requests stay anonymous), and
errors in views tracked and cleared. Servers start once per test; each writes its events
under its own ``source`` in one daemon started for the module. Periodic sends are off,
so every event arrives through a server's exit path: without the ASGI lifespan flush or
the Celery pool-exit flush, none would.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

import uptake
from tests.sdk.fake_daemon import short_tmpdir
from tests.sdk.integrations import served_apps
from tests.support.daemon import DaemonProcess
from uptake_aggregator.store.sqlite.storage import connect_readonly

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
DJANGO_PROJECT = ROOT / "examples" / "django_project"
USERS = [f"user{index}" for index in range(6)]
ROUNDS = 8  # requests per user: pages, streams and failing views
#: httpx's default (5 s) is too short for a worker's first request on a loaded machine:
#: gunicorn answers on its socket before each worker has imported Django.
_HTTP_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with short_tmpdir() as path:
        yield path


@pytest.fixture(scope="module")
def real_daemon(workdir: Path) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(workdir)
    try:
        yield daemon.start()
    finally:
        daemon.stop()


def _env(daemon: DaemonProcess, source: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "UPTAKE_SOCKET": str(daemon.socket),
        "UPTAKE_TOKEN_FILE": str(daemon.token_file),
        "UPTAKE_APP": source,
        # No periodic sends: every event reaches the daemon through the servers' exit
        # paths (gunicorn workers' atexit, the ASGI lifespan shutdown, Celery pool exits).
        "UPTAKE_FLUSH_INTERVAL": "120",
        "UPTAKE_SPOOL_DIR": str(daemon.workdir / f"spool-{source}"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        **extra,
    }


@contextlib.contextmanager
def _serving(command: Sequence[str], env: dict[str, str], http: Path) -> Iterator[None]:
    """Start a server on the Unix socket ``http``; SIGTERM and reap it afterwards."""
    server = subprocess.Popen(
        list(command), env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while not _answers(http):
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start: {server.communicate()[1]!r:.3000}")
            time.sleep(0.05)
        yield
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            _, stderr = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            _, stderr = server.communicate()
        with contextlib.suppress(FileNotFoundError):
            http.unlink()
    # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
    assert server.returncode in (0, -signal.SIGTERM), stderr.decode()[-3000:]


def _answers(http: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(http))
        except OSError:
            return False
    return True


def _events(daemon: DaemonProcess, source: str) -> list[dict[str, Any]]:
    conn = connect_readonly(daemon.db)
    try:
        rows = conn.execute(
            "SELECT id, kind, name, user, account, session FROM events WHERE source = ?",
            (source,),
        ).fetchall()
    finally:
        conn.close()
    keys = ("id", "kind", "name", "user", "account", "session")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def _visit(http: Path, user: str | None) -> list[int]:
    """One user's requests over one keep-alive connection with a session cookie."""
    headers = {} if user is None else {"x-user": user}
    transport = httpx.HTTPTransport(uds=str(http))
    statuses = []
    with httpx.Client(
        transport=transport, base_url="http://test", headers=headers, timeout=_HTTP_TIMEOUT
    ) as client:
        client.cookies.set("session", f"visit-of-{user}")
        for index in range(ROUNDS):
            path = ("/page", "/stream", "/page", "/boom")[index % 4]
            response = client.get(path)
            statuses.append(response.status_code)
            if path == "/page":
                assert response.text == (user or "-"), "the server saw someone else"
            if path == "/stream":
                assert response.text == "x" * served_apps.CHUNKS
    return statuses


def _load(http: Path) -> None:
    visitors: list[str | None] = [*USERS, None]
    with ThreadPoolExecutor(max_workers=len(visitors) * 2) as pool:
        results = list(pool.map(lambda user: _visit(http, user), visitors * 2))
    for statuses in results:
        assert statuses.count(500) == ROUNDS // 4 and statuses.count(200) == ROUNDS * 3 // 4


def _check_identities(events: list[dict[str, Any]]) -> None:
    features = Counter(
        (event["name"], event["user"], event["account"])
        for event in events
        if event["kind"] == "feature"
    )
    visits = 2  # each visitor came twice, with the same cookie
    expected: Counter[tuple[str, str | None, str | None]] = Counter()
    for user in [*USERS, None]:
        account = None if user is None else f"acct-{user}"
        expected[("page", user, account)] = visits * ROUNDS // 2
        expected[("before_boom", user, account)] = visits * ROUNDS // 4
        expected[("chunk", user, account)] = visits * ROUNDS // 4 * served_apps.CHUNKS
    assert features == expected
    assert len({event["id"] for event in events}) == len(events)
    for user in USERS:
        sessions = {e["session"] for e in events if e["user"] == user}
        assert len(sessions) == 1 and None not in sessions, (user, sessions)
    anonymous = {e["session"] for e in events if e["user"] is None}
    assert anonymous == {None}
    ends = Counter(e["user"] for e in events if e["kind"] == "session_end")
    assert ends == dict.fromkeys(USERS, visits * ROUNDS), "every request, failed ones too"


def test_wsgi_under_gunicorn_workers_and_threads(real_daemon: DaemonProcess, workdir: Path) -> None:
    http = workdir / "wsgi.sock"
    command = [sys.executable, "-m", "gunicorn", "-w", "3", "--threads", "4"]
    command += ["-b", f"unix:{http}", "--graceful-timeout", "10"]
    command += ["tests.sdk.integrations.served_apps:wsgi_app"]
    with _serving(command, _env(real_daemon, "served-wsgi"), http):
        _load(http)
    _check_identities(_events(real_daemon, "served-wsgi"))


def test_asgi_under_uvicorn(real_daemon: DaemonProcess, workdir: Path) -> None:
    http = workdir / "asgi.sock"
    command = [sys.executable, "-m", "uvicorn", "--uds", str(http), "--lifespan", "on"]
    command += ["--log-level", "warning", "tests.sdk.integrations.served_apps:asgi_app"]
    with _serving(command, _env(real_daemon, "served-asgi"), http):
        _load(http)
    _check_identities(_events(real_daemon, "served-asgi"))


_SEED_USERS = """
import django
django.setup()
from django.core.management import call_command
from django.contrib.auth.models import User
call_command("migrate", verbosity=0, interactive=False)
for name in {users!r}:
    User.objects.create_user(name, name + "@acct-" + name + ".example", "pw")
"""


def test_the_django_example_under_gunicorn(real_daemon: DaemonProcess, workdir: Path) -> None:
    env = _env(
        real_daemon,
        "served-django",
        DJANGO_SETTINGS_MODULE="reports_site.settings",
        REPORTS_DB=str(workdir / "reports.sqlite3"),
    )
    subprocess.run(
        [sys.executable, "-c", _SEED_USERS.format(users=USERS)],
        env=env,
        cwd=DJANGO_PROJECT,
        check=True,
        timeout=120,
    )
    http = workdir / "django.sock"
    command = [sys.executable, "-m", "gunicorn", "-w", "3", "--threads", "4"]
    command += ["-b", f"unix:{http}", "--chdir", str(DJANGO_PROJECT), "reports_site.wsgi"]
    with _serving(command, env, http), ThreadPoolExecutor(max_workers=len(USERS)) as pool:
        list(pool.map(lambda user: _django_visit(http, user), USERS))
    events = _events(real_daemon, "served-django")
    user_ids = {row["user"] for row in events}
    assert len(user_ids) == len(USERS) and None not in user_ids
    by_user: dict[str, Counter[tuple[str, str | None]]] = {}
    for event in events:
        by_user.setdefault(event["user"], Counter())[(event["kind"], event["name"])] += 1
        assert event["account"] is not None
    accounts = {(event["user"], event["account"]) for event in events}
    assert len(accounts) == len(USERS), "one account per user, never another's"
    for counts in by_user.values():
        assert counts[("login", None)] == counts[("logout", None)] == 1
        assert counts[("feature", "list_reports")] == counts[("feature", "export_report")] == 4
    for user in user_ids:
        visit = {e["session"] for e in events if e["user"] == user and e["kind"] == "feature"}
        assert len(visit) == 1 and None not in visit
    assert len({event["id"] for event in events}) == len(events)


def _django_visit(http: Path, user: str) -> None:
    transport = httpx.HTTPTransport(uds=str(http))
    with httpx.Client(transport=transport, base_url="http://test", timeout=_HTTP_TIMEOUT) as client:
        response = client.post("/login", data={"username": user, "password": "pw"})
        assert response.status_code == 200, response.text
        for _ in range(4):
            assert client.get("/reports").status_code == 200
            assert client.post("/reports/export?format=csv").status_code == 200
        assert client.post("/logout").status_code == 200


class _CeleryWorker:
    """A real prefork ``celery worker`` running ``served_celery``, tracking as ``source``."""

    def __init__(self, daemon: DaemonProcess, workdir: Path, source: str, *options: str) -> None:
        self.broker = workdir / f"broker-{source}"
        self.broker.mkdir()
        self.tracebacks = workdir / f"tracebacks-{source}.txt"
        env = _env(
            daemon,
            source,
            SERVED_CELERY_BROKER=str(self.broker),
            SERVED_CELERY_TRACEBACKS=str(self.tracebacks),
        )
        command = [sys.executable, "-m", "celery", "-A", "tests.sdk.integrations.served_celery"]
        command += ["worker", "--pool", "prefork", "--concurrency", "2", "--loglevel", "WARNING"]
        command += ["--without-mingle", "--without-gossip", "--without-heartbeat", *options]
        self.process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.stderr = ""

    def pool_processes(self) -> list[int]:
        pid = self.process.pid
        return [
            int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        ]

    def stop(self, timeout: float = 30) -> bool:
        """A warm shutdown (SIGTERM), waited for ``timeout`` s, then SIGKILL.

        Asserts a clean exit, except after one hang, billiard's
        (``_stuck_in_billiards_pool_finalizer``): then it returns True and the test goes
        on to check what was delivered.
        """
        self.process.send_signal(signal.SIGTERM)
        stuck_in_billiard = False
        try:
            _, stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stuck_in_billiard = _stuck_in_billiards_pool_finalizer(self)
            self.process.kill()
            _, stderr = self.process.communicate()
        self.stderr = stderr.decode(errors="replace")[-3000:]
        if not stuck_in_billiard:
            assert self.process.returncode == 0, self.stderr
        return stuck_in_billiard


def _stuck_in_billiards_pool_finalizer(worker: _CeleryWorker) -> bool:
    """Whether a worker that outlived its warm shutdown hangs in billiard, after its pool.

    billiard's blocking pool (the one Celery uses with a transport that has no event loop,
    such as the filesystem broker here) finalizes at exit by taking the lock its pool
    processes wait for jobs under (``Pool._help_stuff_finish``): when a pool process died
    holding it, the main process waits forever, its pool processes already gone (1 run in
    about 80 here; ``test_celery_worker_delivers_when_billiard_hangs_at_exit`` makes it
    happen). Only that hang is told apart: the main thread's traceback (which
    ``served_celery`` writes on SIGUSR2) must be in that function and no pool process may
    be left; any other hang still fails the test.
    """
    children = worker.pool_processes()
    worker.process.send_signal(signal.SIGUSR2)
    dump = worker.tracebacks
    deadline = time.monotonic() + 5
    while "Current thread" not in (dump.read_text() if dump.exists() else ""):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    time.sleep(0.2)  # the rest of the dump follows the current thread's line at once
    return not children and "_help_stuff_finish" in dump.read_text()


def test_celery_prefork_tasks_carry_their_producers_identity(
    real_daemon: DaemonProcess, workdir: Path
) -> None:
    from tests.sdk.integrations.served_celery import make_app

    # What a pool process tracked reaches the daemon only through the flush when it exits
    # (recycled or at shutdown): periodic sends are off (_env).
    # Pool processes are recycled mid-run (they exit with os._exit, skipping atexit): what
    # they tracked must still arrive, once (the events peers lose in Celery workers).
    worker = _CeleryWorker(
        real_daemon,
        workdir,
        "served-celery",
        *("--max-tasks-per-child", "7", "--prefetch-multiplier", "1"),
    )
    broker = worker.broker
    producer = make_app(str(broker))
    try:
        for _ in range(4):
            for user in [*USERS, None]:
                account = None if user is None else f"acct-{user}"
                uptake.restore_context((user, account, None))
                producer.send_task("served.export", args=[user or "-"])
        uptake.restore_context((None, None, None))
        expected = 4 * (len(USERS) + 1)
        # Two recycled children's tasks (7 each) arrive while the worker runs...
        deadline = time.monotonic() + 60
        while len(_celery_exports(real_daemon)) < 14 and time.monotonic() < deadline:
            time.sleep(0.1)
        # ... and the rest from the pool processes still running, once every task has run:
        # those processes deliver at the shutdown's exit.
        while len(list(broker.glob("done/*"))) < expected and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        uptake.restore_context((None, None, None))
        worker.stop()
    exports = _celery_exports(real_daemon)
    assert len(exports) == expected, worker.stderr
    for user, account, props in exports:
        assert user == (None if props["expected"] == "-" else props["expected"])
        assert account == (None if user is None else f"acct-{user}")
    pids = {props["pid"] for _, _, props in exports}
    assert worker.process.pid not in pids, "run in forked children"
    assert len(pids) >= 3, "children were recycled"
    booted = [e for e in _events(real_daemon, "served-celery") if e["name"] == "worker_booted"]
    assert len(booted) == 1, "the main process's event, never re-sent by a forked child"


def test_celery_worker_delivers_when_billiard_hangs_at_exit(
    real_daemon: DaemonProcess, workdir: Path
) -> None:
    """Pool processes killed while they wait for a job: the worker's own event still arrives.

    One of them holds the lock they read jobs under, so billiard's exit finalizer hangs
    (checked) and the SDK's exit handler never runs: the integration's flush at
    ``worker_shutdown`` is what delivers the main process's event.
    """
    worker = _CeleryWorker(real_daemon, workdir, "served-celery-killed")
    try:
        deadline = time.monotonic() + 60
        while len(list(worker.broker.glob("ready/*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # from set up to their wait for a job
        for pid in worker.pool_processes():
            os.kill(pid, signal.SIGKILL)
        time.sleep(1.0)
    finally:
        hung = worker.stop(timeout=15)
    assert hung, "billiard no longer hangs here: this test no longer exercises that exit"
    booted = [
        e for e in _events(real_daemon, "served-celery-killed") if e["name"] == "worker_booted"
    ]
    assert len(booted) == 1, "the main process's event, delivered at worker_shutdown"


def _celery_exports(daemon: DaemonProcess) -> list[tuple[str | None, str | None, dict[str, Any]]]:
    conn = connect_readonly(daemon.db)
    try:
        rows = conn.execute(
            "SELECT user, account, props FROM events"
            " WHERE source = 'served-celery' AND name = 'celery_export'"
        ).fetchall()
    finally:
        conn.close()
    return [(user, account, json.loads(props)) for user, account, props in rows]
