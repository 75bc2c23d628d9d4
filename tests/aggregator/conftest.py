"""Fixtures for daemon tests: short tmp dirs (Unix socket paths < 100 chars) and daemons."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess


def _short_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="up", dir="/tmp"))


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A fresh directory under /tmp with a short path, removed afterwards."""
    path = _short_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def daemon() -> Iterator[DaemonProcess]:
    """One real daemon per test module, on its own socket and database."""
    workdir = _short_dir()
    process = DaemonProcess(workdir, "--frame-timeout", "2", "--hello-timeout", "2")
    try:
        yield process.start()
    finally:
        process.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def fresh_daemon(short_tmp: Path) -> Iterator[DaemonProcess]:
    """A daemon of this test alone (for tests that kill or stop it)."""
    process = DaemonProcess(short_tmp)
    try:
        yield process
    finally:
        process.stop()
