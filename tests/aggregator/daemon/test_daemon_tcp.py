"""TCP on 127.0.0.1: only clients with the token from the 0600 token file get in."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess, RawConnection, make_events, stored_ids
from uptake.client import DaemonClient, DaemonRefusedError
from uptake.protocol import ErrorFrame, Welcome
from uptake_aggregator.store.sqlite.storage import connect_readonly


@pytest.fixture(scope="module")
def tcp_daemon() -> Iterator[tuple[DaemonProcess, int]]:
    workdir = Path(tempfile.mkdtemp(prefix="up", dir="/tmp"))
    daemon = DaemonProcess(workdir, "--tcp", "0")
    try:
        daemon.start()
        with daemon.client() as client:
            port = client.status()["tcp_port"]
        yield daemon, port
    finally:
        daemon.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def test_right_token_ingests(tcp_daemon: tuple[DaemonProcess, int]) -> None:
    daemon, port = tcp_daemon
    events = make_events(100)
    with DaemonClient(f"tcp://127.0.0.1:{port}", token_file=daemon.token_file) as client:
        ack = client.send(events)
        assert client.status()["tcp_port"] == port
    assert ack.accepted == 100
    assert {e.id for e in events} <= set(stored_ids(daemon.db))


def test_token_file_is_private(tcp_daemon: tuple[DaemonProcess, int]) -> None:
    daemon, _ = tcp_daemon
    assert stat.S_IMODE(os.stat(daemon.token_file).st_mode) == 0o600
    assert len(daemon.token_file.read_text().strip()) >= 32


@pytest.mark.parametrize("token", [None, "", "not-the-token"])
def test_missing_or_wrong_token_is_refused(
    tcp_daemon: tuple[DaemonProcess, int], token: str | None
) -> None:
    _, port = tcp_daemon
    with RawConnection(("127.0.0.1", port)) as raw:
        answer = raw.hello(token=token)
        assert isinstance(answer, ErrorFrame)
        assert answer.code == "unauthorized"
        assert "token" in answer.message
        assert raw.receive_all() == []  # then the connection is closed
    with (
        pytest.raises(DaemonRefusedError) as refused,
        DaemonClient(f"tcp://127.0.0.1:{port}", token=token or "x") as client,
    ):
        client.send(make_events(1))
    assert refused.value.code == "unauthorized"


def test_unix_socket_needs_no_token(tcp_daemon: tuple[DaemonProcess, int]) -> None:
    daemon, _ = tcp_daemon
    with RawConnection(daemon.socket) as raw:
        assert isinstance(raw.hello(), Welcome)


def _listening_addresses(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net shows them) listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as rows:
            for row in list(rows)[1:]:
                local, state = row.split()[1], row.split()[3]
                address, port_hex = local.split(":")
                if int(port_hex, 16) == port and state == "0A":  # 0A: LISTEN
                    found.append(address)
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net")
def test_listens_on_loopback_only(tcp_daemon: tuple[DaemonProcess, int]) -> None:
    _, port = tcp_daemon
    assert _listening_addresses(port) == ["0100007F"]  # 127.0.0.1, and nothing else


def test_sdk_over_tcp_with_the_token_file(
    tcp_daemon: tuple[DaemonProcess, int], short_tmp: Path
) -> None:
    daemon, port = tcp_daemon
    host = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("sdk_host.py")),
            f"tcp://127.0.0.1:{port}",
            str(short_tmp / "spool"),
            "500",
        ],
        env=dict(os.environ, UPTAKE_TOKEN_FILE=str(daemon.token_file)),
        input="",
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert host.returncode == 0, host.stderr
    stats = json.loads(host.stdout.strip().splitlines()[-1])
    assert stats["sent"] == 504 and stats["spooled"] == 0
    conn = connect_readonly(daemon.db)
    try:
        [(stored,)] = conn.execute("SELECT count(*) FROM events WHERE source = 'sdk-host'")
    finally:
        conn.close()
    assert stored == 504
