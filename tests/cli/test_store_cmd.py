"""`usage store init` and `usage report --store` against a real PostgreSQL (tests/support).

The events of the tiny CLI product are imported into SQLite with the CLI, then forwarded
into the centre by two hosts: every format of `usage report --store` must print the very
bytes `usage report --db` prints.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.cli._events import SINCE, UNTIL, event_lines, write_lines
from tests.support.postgres import PostgresCluster, forward_from_hosts
from uptake_aggregator.store import open_store
from uptake_cli import _fast
from uptake_cli.app import app

WINDOW = ["--since", SINCE, "--until", UNTIL]


@pytest.fixture(scope="module")
def loaded(postgres: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(SQLite database, central store URL) holding the same events, for the module.

    The central store is initialised with the CLI; its events come from the database,
    forwarded by two hosts.
    """
    runner = CliRunner()
    root = tmp_path_factory.mktemp("store_cmd")
    db = root / "uptake.db"
    source = write_lines(root / "events.jsonl", event_lines())
    imported = runner.invoke(app, ["import", str(source), "--db", str(db)])
    assert imported.exit_code == 0, imported.output
    url = postgres.new_database()
    result = runner.invoke(app, ["store", "init", url])
    assert result.exit_code == 0, result.output
    events = list(open_store(db).read_events(None, None))
    forward_from_hosts(url, [events[::2], events[1::2]], hosts=2)
    return db, url


@pytest.fixture
def loaded_db(loaded: tuple[Path, str], isolated_env: dict[str, Path]) -> Path:
    """The module's SQLite database (no user config: ``isolated_env``)."""
    return loaded[0]


@pytest.fixture
def central(loaded: tuple[Path, str], isolated_env: dict[str, Path]) -> str:
    """The module's central store URL."""
    return loaded[1]


def test_init_creates_then_leaves_the_schema(
    runner: CliRunner, pg_url: str, isolated_env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = runner.invoke(app, ["store", "init", pg_url])
    assert first.exit_code == 0, first.output
    assert "created schema version" in first.stdout
    # The password from PGPASSWORD (libpq), the URL from UPTAKE_STORE.
    monkeypatch.setenv("PGPASSWORD", "uptake-test-pw")
    monkeypatch.setenv("UPTAKE_STORE", pg_url.replace(":uptake-test-pw@", "@"))
    again = runner.invoke(app, ["store", "init"])
    assert again.exit_code == 0, again.output
    assert "up to date" in again.stdout
    assert "uptake-test-pw" not in first.stdout + again.stdout


@pytest.mark.parametrize(
    "form",
    [
        ["--format", "json"],
        ["--format", "table"],
        ["--format", "html"],
        ["--format", "csv", "--table", "accounts"],
        ["--format", "json", "--account", "acme", "--user", "u1", "--core", "feature_1"],
    ],
)
def test_every_format_prints_what_the_local_report_prints(
    runner: CliRunner, central: str, loaded_db: Path, form: list[str]
) -> None:
    local = runner.invoke(app, ["report", *WINDOW, *form, "--db", str(loaded_db)])
    assert local.exit_code == 0, local.output
    found = runner.invoke(app, ["report", *WINDOW, *form, "--store", central])
    assert found.exit_code == 0, found.output
    assert found.stdout == local.stdout


def test_the_json_fast_path_reads_the_store_from_the_environment(
    runner: CliRunner,
    central: str,
    loaded_db: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    local = runner.invoke(app, ["report", *WINDOW, "--format", "json", "--db", str(loaded_db)])
    monkeypatch.setenv("UPTAKE_STORE", central)
    assert _fast.run(["report", *WINDOW, "--format", "json"]) == 0
    assert capsys.readouterr().out == local.stdout


def test_a_wrong_password_is_exit_2_and_never_printed(
    runner: CliRunner, postgres: PostgresCluster, central: str
) -> None:
    wrong = central.replace(postgres.password, "not-the-pw-123")
    for argv in (["store", "init", wrong], ["report", "--store", wrong, "--format", "json"]):
        result = runner.invoke(app, argv)
        assert result.exit_code == 2, result.output
        assert "password authentication failed" in result.stderr
        assert "not-the-pw-123" not in result.output
        assert "***" in result.stderr


def test_bad_urls_and_unreachable_servers_are_exit_2(
    runner: CliRunner, postgres: PostgresCluster, tmp_path: Path, isolated_env: dict[str, Path]
) -> None:
    closed = f"postgresql://u:pw-xyz@127.0.0.1:{postgres.port + 1}/nowhere"  # nothing listens
    for url, said in (
        (str(tmp_path / "uptake.db"), "is not a central store URL"),
        ("postgresql://u:pw-xyz@127.0.0.1:notaport/db", "invalid integer value"),
        (closed, "cannot connect to the central store"),
    ):
        for argv in (["store", "init", url], ["report", "--store", url]):
            result = runner.invoke(app, argv)
            assert result.exit_code == 2, result.output
            assert said in result.stderr
            assert "pw-xyz" not in result.output


def test_a_store_never_initialised_says_how_to_create_it(
    runner: CliRunner, postgres: PostgresCluster, isolated_env: dict[str, Path]
) -> None:
    result = runner.invoke(app, ["report", "--store", postgres.new_database()])
    assert result.exit_code == 1, result.output
    assert "usage store init" in result.stderr


def test_check_and_alerts_read_and_record_at_the_centre(
    runner: CliRunner, central: str, loaded_db: Path, tmp_path: Path
) -> None:
    config = tmp_path / "uptake.toml"
    goals = (
        '[[goal]]\nmetric = "utilization"\nscope = "account"\ntarget = 1.0\n\n'
        '[[goal]]\nmetric = "mau"\nscope = "product"\ntarget = 1\n'
    )
    config.write_text(goals, encoding="utf-8")
    check = ["check", "--config", str(config)]
    # The gate reads what the local report reads, from the centre.
    local = runner.invoke(app, [*check, *WINDOW, "--db", str(loaded_db)])
    found = runner.invoke(app, [*check, *WINDOW, "--store", central])
    assert found.exit_code == local.exit_code == 1, found.output
    assert found.stdout == local.stdout
    # --record writes the centre's alert log (once per change), not the local database's.
    recorded = [runner.invoke(app, [*check, "--store", central, "--record"]) for _ in range(2)]
    assert [result.exit_code for result in recorded] == [1, 1], recorded[0].output
    changes = int(recorded[0].stderr.split("recorded ")[1].split()[0])
    assert changes >= 1
    assert "recorded 0 status changes" in recorded[1].stderr
    assert "uptake-test-pw" not in recorded[0].stderr
    listed = runner.invoke(app, ["alerts", "--store", central, "--format", "json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert len(rows) == changes and {row["to"] for row in rows} == {"warning"}
    assert all(row["from"] is None for row in rows)
    untouched = runner.invoke(app, ["alerts", "--db", str(loaded_db), "--format", "json"])
    assert json.loads(untouched.stdout) == []
