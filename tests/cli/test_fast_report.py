"""`usage report --format json` without typer (``uptake_cli._fast``) prints what typer would.

Each command line runs twice in a fresh interpreter: through the console script's entry
(``uptake_cli.entry``, which takes the fast path when it can) and straight through the
typer app. Both must write the same bytes to stdout and stderr and exit the same way.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli._events import SINCE, UNTIL
from uptake_cli._fast import parse

_ENTRY = "from uptake_cli.entry import main; main()"
_TYPER = "from uptake_cli.app import main; main()"


def _run(code: str, args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.argv = ['usage', *sys.argv[1:]]; {code}", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["report", "--format", "json", "--since", SINCE, "--until", UNTIL],
        ["report", f"--since={SINCE}", "-f", "json", f"--until={UNTIL}", "--account", "acme"],
        ["report", "--format", "json", "--until", UNTIL, "--user", "u1", "--feature", "feature_1"],
        ["report", "--format", "json"],  # the default window, from the environment's db
        ["report", "--format", "json", "--since", "2026-13-01"],  # not a date
        ["report", "--format", "json", "--since", UNTIL, "--until", SINCE],  # empty window
        ["report", "--format", "json", "--account", "nobody", "--until", UNTIL],  # unknown
        ["report", "--format", "json", "--db", "{missing}"],  # no database there
        ["report", "--format", "json", "--until", UNTIL, "--config", "{goals}"],
        ["report", "--format", "json", "--config", "{bad}"],  # a bad config file: exit 2
    ],
    ids=[
        "window",
        "equals-forms",
        "user-feature",
        "defaults",
        "bad-date",
        "empty",
        "unknown",
        "no-db",
        "goals",
        "bad-config",
    ],
)
def test_the_fast_path_prints_what_typer_prints(
    loaded_db: Path, tmp_path: Path, args: list[str]
) -> None:
    goals = tmp_path / "goals.toml"
    goals.write_text('[[goal]]\nmetric = "utilization"\nscope = "account"\ntarget = 0.8\n')
    bad = tmp_path / "bad.toml"
    bad.write_text('[[goal]]\nmetric = "utilization"\n')
    paths = {"{missing}": tmp_path / "missing.db", "{goals}": goals, "{bad}": bad}
    for placeholder, path in paths.items():
        args = [arg.replace(placeholder, str(path)) for arg in args]
    assert parse(args) is not None  # each of these takes the fast path
    env = dict(os.environ)
    fast = _run(_ENTRY, args, env)
    assert fast == _run(_TYPER, args, env)
    code, stdout, stderr = fast
    assert (code == 0, bool(stdout), bool(stderr)) in {(True, True, False), (False, False, True)}


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["version"],
        ["report"],  # the table format
        ["report", "--format", "csv"],
        ["report", "--format", "json", "--help"],
        ["report", "--format", "json", "--output", "out.json"],
        ["report", "--format", "json", "--since"],  # value missing
        ["report", "--format", "json", "--since", "2026-01-01", "--since", "2026-01-02"],
        ["report", "--format", "json", "--account", "-x"],
        ["report", "-f=json"],
        ["report", "--format", "json", "--", "--since"],
    ],
)
def test_every_other_command_line_goes_to_typer(args: list[str]) -> None:
    assert parse(args) is None
