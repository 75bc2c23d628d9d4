"""Fixtures for SDK tests: a fake daemon on a short tmp socket, isolated env, client factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import uptake
from tests.sdk.fake_daemon import FakeDaemon, short_tmpdir
from uptake import _api
from uptake._context import NO_IDENTITY, set_identity

ClientFactory = Callable[..., uptake.Client]


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short /tmp directory for Unix sockets."""
    with short_tmpdir() as path:
        yield path


@pytest.fixture(autouse=True)
def _isolated_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sock_dir: Path
) -> Iterator[None]:
    """Never touch the real runtime/cache dirs; reset the default client after each test."""
    for name in [
        "UPTAKE_APP",
        "UPTAKE_DISABLED",
        "UPTAKE_SPOOL",
        "UPTAKE_FLUSH_INTERVAL",
        "UPTAKE_MAX_BATCH",
        "UPTAKE_MAX_QUEUE",
        "UPTAKE_SPOOL_MAX_BYTES",
        "UPTAKE_TOKEN",
        "UPTAKE_EXIT_TIMEOUT",
    ]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("UPTAKE_SOCKET", str(sock_dir / "nobody.sock"))
    monkeypatch.setenv("UPTAKE_SPOOL_DIR", str(tmp_path / "default-spool"))
    monkeypatch.setenv("UPTAKE_TOKEN_FILE", str(tmp_path / "token"))
    set_identity(NO_IDENTITY)
    yield
    set_identity(NO_IDENTITY)
    previous = _api.swap_default(None)
    if previous is not None:
        previous.shutdown(timeout=1.0)


@pytest.fixture
def daemon(sock_dir: Path) -> Iterator[FakeDaemon]:
    """A running fake daemon on a Unix socket."""
    fake = FakeDaemon(str(sock_dir / "d.sock")).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    """A spool directory for the test's clients."""
    return tmp_path / "spool"


@pytest.fixture
def make_client(daemon: FakeDaemon, spool_dir: Path) -> Iterator[ClientFactory]:
    """Build clients pointed at the fake daemon and the tmp spool; shut down after the test."""
    clients: list[uptake.Client] = []

    def factory(**options: Any) -> uptake.Client:
        settings: dict[str, Any] = {
            "socket": daemon.address,
            "spool_dir": spool_dir,
            "flush_interval": 0.05,
        }
        settings.update(options)
        client = uptake.Client(**settings)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.shutdown(timeout=1.0)
