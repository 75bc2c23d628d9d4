"""`usage` start-up loads only what the command that runs needs (no timing asserted here).

Every command module is imported when `usage` starts, whichever command runs, so each keeps
its heavy dependencies (rich, the renderers, the simulation, the daemon, anyio, the SDK
package) inside the code that uses them. `usage report --format json` is what the report
benchmark times in a fresh process: it must load neither rich nor the demo's or the
daemon's code. Each check runs in a fresh interpreter, as `usage` does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from tests.cli._events import SINCE, UNTIL, event_lines, write_lines
from uptake_cli import demo_cmd
from uptake_cli.app import app
from uptake_cli.demo import simulation

# Run `usage ARGS...` in this interpreter, then write the loaded modules to MODULES_FILE.
_RUN_USAGE = """
import json, os, sys
sys.argv = ["usage", *sys.argv[1:]]
from uptake_cli.entry import main
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code
with open(os.environ["MODULES_FILE"], "w") as out:
    json.dump(sorted(sys.modules), out)
sys.exit(code)
"""

#: What no `usage` command module may import at start-up.
_NOT_AT_IMPORT = [
    "rich",
    "anyio",
    "msgspec",
    "uptake",  # the SDK package: the daemon client, the protocol, msgspec
    "uptake_aggregator.daemon.lifecycle",
    "uptake_aggregator.metrics",
    "uptake_aggregator.daemon.server",
    "uptake_cli.demo.simulation",
    "uptake_aggregator.store.sqlite.storage",
    "uptake_cli.demo.runner",
    "uptake_cli._importer",
    "uptake_cli.render_csv",
    "uptake_cli.render_html",
    "uptake_cli.render_table",
    "uptake_cli.svg",
]

#: What `usage report --format json` (no daemon answering) never needs: all of the above
#: but the JSON path's own engine (msgspec, the SDK package for its protocol types,
#: metrics), and typer with the command modules (``uptake_cli._fast`` runs it without).
_JSON_ENGINE = ("msgspec", "uptake", "uptake_aggregator.metrics")
_NOT_FOR_JSON = [name for name in _NOT_AT_IMPORT if name not in _JSON_ENGINE] + [
    "typer",
    "click",
    "uptake_cli.app",
    "uptake_cli.report_cmd",
]

#: Not needed for JSON either, but today loaded by the engine itself (the SDK's worker by
#: uptake/__init__, through uptake.protocol): the CLI must not add them.
_NOT_ADDED_FOR_JSON = ["uptake._processor", "uptake._tracker"]


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "UPTAKE_SOCKET": str(tmp_path / "none.sock"),
        "UPTAKE_DB": str(tmp_path / "none.db"),
        "UPTAKE_SPOOL_DIR": str(tmp_path / "spool"),
        "UPTAKE_LOG_DIR": str(tmp_path / "log"),
        "MODULES_FILE": str(tmp_path / "modules.json"),
    }


def _modules_of(tmp_path: Path, args: list[str]) -> tuple[set[str], str]:
    """Run `usage ARGS` in a fresh interpreter; return its loaded modules and stdout."""
    done = subprocess.run(
        [sys.executable, "-c", _RUN_USAGE, *args],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    modules = json.loads((tmp_path / "modules.json").read_text(encoding="utf-8"))
    return set(modules), done.stdout


def _modules_after(tmp_path: Path, code: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys; print(json.dumps(sorted(sys.modules)))"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(json.loads(done.stdout))


def _loaded(modules: set[str], names: list[str]) -> list[str]:
    """The modules of ``modules`` that are one of ``names`` or inside one of them."""
    return sorted(
        module
        for module in modules
        if any(module == name or module.startswith(name + ".") for name in names)
    )


def test_importing_the_app_loads_no_command_dependencies(tmp_path: Path) -> None:
    modules = _modules_after(tmp_path, "import uptake_cli.app")
    assert "uptake_cli.report_cmd" in modules  # every command is registered...
    assert _loaded(modules, _NOT_AT_IMPORT) == []  # ...without what its body uses


def test_version_loads_no_command_dependencies(tmp_path: Path) -> None:
    modules, stdout = _modules_of(tmp_path, ["version"])
    assert stdout.strip()
    assert _loaded(modules, _NOT_AT_IMPORT) == []


def test_json_report_loads_only_what_json_needs(
    runner: CliRunner, tmp_path: Path, socket_path: Path
) -> None:
    db = tmp_path / "uptake.db"
    source = write_lines(tmp_path / "events.jsonl", event_lines())
    imported = runner.invoke(app, ["import", str(source), "--db", str(db)])
    assert imported.exit_code == 0, imported.output
    window = ["--since", SINCE, "--until", UNTIL]
    args = ["report", "--format", "json", "--db", str(db), "--socket", str(socket_path)]

    modules, stdout = _modules_of(tmp_path, [*args, *window])

    assert json.loads(stdout)["window"]["since"] == SINCE
    assert {"msgspec", "sqlite3", "uptake_aggregator.metrics"} <= modules
    assert _loaded(modules, _NOT_FOR_JSON) == []
    engine = _modules_after(tmp_path, "import uptake_aggregator.metrics, uptake.protocol")
    assert _loaded(modules - engine, _NOT_ADDED_FOR_JSON) == []


def test_demo_defaults_are_the_simulations() -> None:
    # demo_cmd repeats them so that building its options does not import the simulation.
    assert demo_cmd.DEFAULT_DAYS == simulation.DEFAULT_DAYS
    assert demo_cmd.DEFAULT_SEED == simulation.DEFAULT_SEED
    assert demo_cmd.MIN_DAYS == simulation.MIN_DAYS
