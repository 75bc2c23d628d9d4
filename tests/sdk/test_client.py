"""The public blocking client (``uptake.client``) against the fake daemon."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.sdk.fake_daemon import FakeDaemon
from uptake.client import (
    BatchRefusedError,
    DaemonClient,
    DaemonRefusedError,
    DaemonUnavailableError,
    connect,
    daemon_is_running,
    parse_address,
)
from uptake.protocol import Event, new_event_id


def _event(name: str) -> Event:
    ts = time.time_ns() // 1000
    return Event(id=new_event_id(ts), ts=ts, kind="feature", name=name, user="u1")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.parametrize(
    ("address", "parsed"),
    [
        ("tcp://127.0.0.1:7878", ("127.0.0.1", 7878)),
        ("tcp://:7878", ("127.0.0.1", 7878)),
        ("/run/user/1000/uptake/uptake.sock", "/run/user/1000/uptake/uptake.sock"),
        (Path("/tmp/u.sock"), "/tmp/u.sock"),
    ],
)
def test_one_address_syntax(address: str | Path, parsed: object) -> None:
    assert parse_address(address) == parsed


@pytest.mark.parametrize("address", ["tcp://127.0.0.1", "tcp://127.0.0.1:port", "tcp://:0"])
def test_bad_tcp_addresses_are_refused(address: str) -> None:
    with pytest.raises(ValueError, match=r"use tcp://127\.0\.0\.1:PORT"):
        parse_address(address)
    with pytest.raises(DaemonUnavailableError):
        DaemonClient(address).send([])


def test_send_returns_the_ack(daemon: FakeDaemon) -> None:
    events = [_event("a"), _event("b")]
    with DaemonClient(daemon.address, client_name="tests") as client:
        ack = client.send(events)
        assert client.welcome is not None
    assert (ack.seq, ack.accepted, ack.duplicates) == (1, 2, 0)
    assert [hello.client for hello in daemon.hellos] == ["tests"]
    assert daemon.features() == ["a", "b"]


def test_a_refused_event_raises_batch_refused(daemon: FakeDaemon) -> None:
    daemon.refuse_names = {"bad"}
    with pytest.raises(BatchRefusedError) as refused, DaemonClient(daemon.address) as client:
        client.send([_event("bad")])
    assert refused.value.code == "bad_event"
    assert isinstance(refused.value, DaemonRefusedError)


def test_a_refused_hello_raises_refused(daemon: FakeDaemon) -> None:
    daemon.mode = "refuse"
    with pytest.raises(DaemonRefusedError) as refused:
        connect(daemon.address, 2.0)
    assert refused.value.code == "internal"


def test_tcp_sends_the_token_from_the_token_file(tmp_path: Path) -> None:
    daemon = FakeDaemon(f"tcp://127.0.0.1:{_free_port()}", token="sekrit").start()
    try:
        token_file = tmp_path / "uptake.token"
        token_file.write_text("sekrit\n", encoding="utf-8")
        with DaemonClient(daemon.address, token_file=token_file) as client:
            client.send([_event("over_tcp")])
        with pytest.raises(DaemonUnavailableError, match="token file"):
            DaemonClient(daemon.address, token_file=tmp_path / "missing").send([])
    finally:
        daemon.stop()
    assert daemon.features() == ["over_tcp"]
    assert daemon.hellos[0].token == "sekrit"


def test_nothing_listening_is_unavailable(sock_dir: Path) -> None:
    missing = sock_dir / "none.sock"
    with pytest.raises(DaemonUnavailableError, match="no uptake daemon is running"):
        DaemonClient(missing).send([])
    assert not daemon_is_running(missing, timeout=0.5)
