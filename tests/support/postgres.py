"""A throwaway PostgreSQL cluster for the tests: started once per session, always stopped.

``PostgresCluster.start()`` runs Debian's ``initdb`` and ``pg_ctl`` (as the ``postgres``
user when the tests run as root: initdb refuses root) in a short tmp dir, with the unix
socket in that dir and TCP on 127.0.0.1 at a free port, durability off (fsync,
synchronous_commit, full_page_writes: a crash loses the cluster, which is thrown away
anyway). Tests get fresh databases from ``new_database()``: ``CREATE DATABASE`` copies
``template1`` (a few ms), so each test may have its own.

The ``postgres`` fixture (tests/conftest.py) gives the session's cluster; tests skip with
a clear reason when no PostgreSQL is installed (``.ci/run`` installs it).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from uptake.protocol import Event

__all__ = [
    "PostgresCluster",
    "find_pg_bin",
    "forward_from_hosts",
    "outbox_rows",
    "truncate_central",
]

_SUPERUSER = "uptake"
_PASSWORD = "uptake-test-pw"


def find_pg_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` holding ``initdb`` (None when absent)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parent.parent.name),
    )
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def truncate_central(url: str) -> None:
    """Empty every table of the central schema at ``url`` but its version (a fresh store).

    DELETE, not TRUNCATE: on the tests' few rows it is ~10x faster (TRUNCATE makes new
    files for every table and index).
    """
    import psycopg

    with psycopg.connect(url) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename <> 'uptake_schema'"
            )
        ]
        for table in tables:
            conn.execute(f'DELETE FROM "{table}"')


def outbox_rows(events: Sequence[Event], start: int = 1) -> list[tuple[object, ...]]:
    """The outbox rows of ``events`` stored with sequences ``start``, ``start + 1``, ..."""
    from uptake_aggregator.store.rows import outbox_row

    return [outbox_row(seq, event) for seq, event in enumerate(events, start=start)]


def forward_from_hosts(url: str, batches: Sequence[Sequence[Event]], hosts: int) -> None:
    """Batch k goes to host k mod ``hosts``; each host forwards its own distinct events.

    A host's outbox holds each event once, in its local commit order (the sequence), and
    forwards it in two chunks; an event that reached two hosts is forwarded by both.
    """
    from uptake_aggregator.store.postgres.central import CentralWriter

    writer = CentralWriter(url)
    try:
        for host in range(hosts):
            outbox = list({e.id: e for batch in batches[host::hosts] for e in batch}.values())
            chunk = outbox_rows(outbox)
            half = (len(chunk) + 1) // 2
            for part in (chunk[:half], chunk[half:]):
                if part:
                    writer.forward(f"host{host}", part)
    finally:
        writer.close()


class PostgresCluster:
    """One cluster in its own directory; ``stop()`` it (idempotent) when done."""

    def __init__(self, bin_dir: Path, root: Path | None = None, settings: str = "") -> None:
        """``root``: the cluster's directory (a new /tmp dir by default; an existing
        cluster there is reused, as the benchmarks do); ``settings``: postgresql.conf
        lines added at initdb."""
        self.bin_dir = bin_dir
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
        self.root = root or Path(tempfile.mkdtemp(prefix="pg", dir="/tmp"))
        self.data = self.root / "data"
        self.settings = settings
        port_file = self.root / "port"
        self.port = int(port_file.read_text()) if port_file.exists() else _free_port()
        port_file.write_text(str(self.port))
        self.user = _SUPERUSER
        self.password = _PASSWORD
        self._as_postgres = os.geteuid() == 0
        self._counter = 0
        self._lock = threading.Lock()
        self.running = False

    # -- lifecycle ------------------------------------------------------------------------

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / argv[0]), *argv[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=60)

    def start(self) -> PostgresCluster:
        """initdb (once) and start the server; raises when it cannot."""
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        if not self.data.exists():
            pwfile = self.root / "pw"
            pwfile.write_text(self.password)
            if self._as_postgres:
                os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                self.user,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            )
            pwfile.unlink()
            with (self.data / "postgresql.conf").open("a") as conf:
                conf.write(
                    f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                    f"unix_socket_directories = '{self.root}'\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                    "max_connections = 60\nshared_buffers = 64MB\n" + self.settings
                )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "start")
        self.running = True
        return self

    def server_running(self) -> bool:
        """True when a server runs on this cluster's data directory (maybe another process's)."""
        if not self.data.exists():
            return False
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``mode``: fast or immediate); nothing when it is not running."""
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)
            self.running = False

    def destroy(self) -> None:
        """Stop the server and remove its directory."""
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- databases ------------------------------------------------------------------------

    def url(self, database: str = "postgres", *, password: bool = True) -> str:
        """A TCP URL of ``database`` (with the password unless ``password=False``)."""
        secret = f":{self.password}" if password else ""
        return f"postgresql://{self.user}{secret}@127.0.0.1:{self.port}/{database}"

    def socket_url(self, database: str = "postgres") -> str:
        """A URL over the unix socket in the cluster's directory (trust auth)."""
        return f"postgresql://{self.user}@/{database}?host={self.root}&port={self.port}"

    def new_database(self) -> str:
        """Create a fresh empty database; return its URL."""
        import psycopg

        with self._lock:
            self._counter += 1
            name = f"t{os.getpid()}_{self._counter}"
        with psycopg.connect(self.socket_url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template1')
        return self.url(name)

    def __enter__(self) -> PostgresCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.destroy()
