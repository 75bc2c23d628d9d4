"""The dependency boundary: importing and using the SDK loads nothing heavy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_FORBIDDEN = ["aiosqlite", "anyio", "typer", "rich", "click", "uptake_aggregator", "uptake_cli"]

_SCRIPT = """
import json, sys
import uptake
uptake.configure(app="probe")
uptake.identify(user="u1")
uptake.track("probe", x=1)
uptake.flush(1.0)
print(json.dumps(sorted(sys.modules)))
"""


def test_import_uptake_loads_no_daemon_or_cli_dependencies(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "UPTAKE_SOCKET": str(tmp_path / "none.sock"),
        "UPTAKE_SPOOL_DIR": str(tmp_path / "spool"),
    }
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    modules = json.loads(result.stdout)
    loaded = sorted(name for name in modules if name.split(".")[0] in _FORBIDDEN)
    assert loaded == []
    assert "uptake" in modules and "msgspec" in modules


def test_public_names_load_on_first_use() -> None:
    """``import uptake`` is light; each name in ``__all__`` loads when first used."""
    probe = (
        "import json, sys\n"
        "import uptake.protocol\n"
        "light = 'uptake._tracker' not in sys.modules and 'uptake._processor' not in sys.modules\n"
        "import uptake\n"
        "names = {name: callable(getattr(uptake, name)) for name in uptake.__all__}\n"
        "try:\n"
        "    uptake.no_such_name\n"
        "    missing = False\n"
        "except AttributeError:\n"
        "    missing = True\n"
        "namespace = {}\n"
        "exec('from uptake import *', namespace)\n"
        "print(json.dumps([light, names, missing, sorted(set(uptake.__all__) - set(namespace))]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    light, names, missing, not_starred = json.loads(result.stdout)
    assert light
    assert names and all(names.values())
    assert missing
    assert not_starred == []
