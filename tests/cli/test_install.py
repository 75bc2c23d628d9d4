"""The SDK installs alone: `pip install uptake` brings no server dependency."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_plain_install_is_the_sdk_only(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    # A bare venv, filled by this interpreter's pip (--python): ensurepip's own copy of pip
    # would take longer to install than uptake does.
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    subprocess.run(
        [*pip, "install", "-q", str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    listed = subprocess.run(
        [*pip, "list", "--format=freeze"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.lower()
    installed = {line.split("==")[0] for line in listed.splitlines()}
    assert {"msgspec", "platformdirs", "uptake"} <= installed
    assert not installed & {"typer", "anyio", "click", "rich"}
    imported = subprocess.run(
        [str(python), "-c", "import uptake, uptake.protocol; uptake.track('x'); print('ok')"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={"UPTAKE_DISABLED": "1", "PATH": "/usr/bin:/bin"},
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "ok"
    usage = subprocess.run(
        [str(env_dir / "bin" / "usage"), "report"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert usage.returncode == 2
    assert usage.stderr.strip().splitlines() == [
        "usage: the daemon and the `usage` command need the server extra: "
        "pip install 'uptake[server]'"
    ]
