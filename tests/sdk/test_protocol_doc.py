"""docs/protocol.md stays true: its minimal client runs against a real daemon, its hex
example is the real encoding, and it names every message and error code."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess, running_daemon
from uptake.protocol import ErrorCode, Hello, Message, encode_frame

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


@pytest.fixture
def daemon() -> Iterator[DaemonProcess]:
    workdir = Path(tempfile.mkdtemp(prefix="up", dir="/tmp"))
    try:
        with running_daemon(workdir) as process:
            yield process
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _code_blocks(doc: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", doc, flags=re.S | re.M)


def test_the_minimal_client_talks_to_a_real_daemon(doc: str, daemon: DaemonProcess) -> None:
    [client] = [block for block in _code_blocks(doc, "python") if "minimal_client.py" in block]
    assert len(client.splitlines()) <= 35  # "about 30 lines" is part of the promise
    env = {**os.environ, "UPTAKE_SOCKET": str(daemon.socket)}
    done = subprocess.run(
        [sys.executable, "-c", client],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    welcome, ack, stored = done.stdout.splitlines()
    assert "'type': 'welcome'" in welcome and "'protocol': 1" in welcome
    assert ack == "{'type': 'ack', 'seq': 1, 'accepted': 1, 'duplicates': 0}"
    assert stored == "events stored: 1"
    with daemon.client() as client_:
        assert client_.status()["events_stored"] == 1


def test_the_hex_example_is_the_real_hello_frame(doc: str) -> None:
    [dump] = [block for block in _code_blocks(doc, "text") if '"hello"' in block]
    # Each line: the bytes in hex, then an explanation after two or more spaces.
    hex_bytes = "".join(line.split("  ")[0] for line in dump.splitlines())
    assert bytes.fromhex(hex_bytes) == encode_frame(Hello(protocol=1, client="demo/1.0"))
    assert "is 42 bytes on the wire" in doc


def test_every_error_code_is_documented(doc: str) -> None:
    codes = {
        value
        for name, value in vars(ErrorCode).items()
        if name.isupper() and isinstance(value, str)
    }
    section = doc.split("## 8. Errors", 1)[1].split("## 9.", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M))
    assert documented == codes


def test_every_message_is_documented(doc: str) -> None:
    tags = {member.__struct_config__.tag for member in Message.__args__}
    for tag in tags:
        assert f"**`{tag}`**" in doc, tag
