"""`usage report` and `usage seats set` end to end: real storage, real metrics engine."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from tests.cli._events import SINCE, UNTIL
from uptake.protocol import ReportFilters
from uptake_aggregator.metrics import build_report
from uptake_aggregator.metrics.report_schema import Report as UsageReport
from uptake_cli.app import app
from uptake_cli.render_csv import CSV_COLUMNS
from uptake_cli.report_cmd import render_json

WINDOW = ["--since", SINCE, "--until", UNTIL]


def test_json_is_exactly_the_section_6_report(runner: CliRunner, loaded_db: Path) -> None:
    result = runner.invoke(app, ["report", *WINDOW, "--format", "json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    msgspec.convert(printed, UsageReport)
    # No config file: the goals list is there, empty.
    expected = build_report(loaded_db, ReportFilters(since=SINCE, until=UNTIL))
    assert printed == {**expected, "goals": []}
    assert list(printed) == [
        "window", "product", "features", "accounts", "users", "retention", "releases",
        "lifecycle", "power_users", "activation", "goals",
    ]  # fmt: skip
    assert printed["window"] == {"since": SINCE, "until": UNTIL}
    assert [(r["day"], r["version"]) for r in printed["releases"]] == [("2026-11-07", "1.1.0")]
    assert printed["activation"] is None  # no core features given
    acme = next(row for row in printed["accounts"] if row["account"] == "acme")
    assert acme["seats"] == 4


def test_json_field_order_is_stable_whatever_the_source_order(
    sample_report: dict[str, object],
) -> None:
    shuffled = {key: sample_report[key] for key in reversed(list(sample_report))}
    assert render_json(shuffled) == render_json(sample_report)
    assert render_json(sample_report).startswith('{\n  "window": {\n    "since"')


def test_filters_narrow_the_report(runner: CliRunner, loaded_db: Path) -> None:
    result = runner.invoke(app, ["report", *WINDOW, "-f", "json", "--account", "globex"])
    assert result.exit_code == 0, result.output
    accounts = {row["account"] for row in json.loads(result.stdout)["accounts"]}
    assert accounts == {"globex"}
    html = runner.invoke(app, ["report", *WINDOW, "-f", "html", "--account", "globex"])
    assert "only account globex" in html.stdout  # a filtered page says so


def test_default_output_is_tables(runner: CliRunner, loaded_db: Path) -> None:
    result = runner.invoke(app, ["report", *WINDOW])
    assert result.exit_code == 0, result.output
    for heading in ("Product usage", "Top features", "Accounts", "Users needing attention"):
        assert heading in result.stdout
    assert "acme" in result.stdout and "feature_0" in result.stdout


@pytest.mark.parametrize("table", ["users", "accounts", "features", "dau"])
def test_csv_writes_the_chosen_table(runner: CliRunner, loaded_db: Path, table: str) -> None:
    result = runner.invoke(app, ["report", *WINDOW, "-f", "csv", "--table", table])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout, newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS[table]
    if table == "dau":
        assert len(rows) == 1 + 14  # every day of the window, zeros included


def test_output_file_for_every_format(runner: CliRunner, loaded_db: Path, tmp_path: Path) -> None:
    for fmt in ("table", "json", "csv", "html"):
        target = tmp_path / f"report.{fmt}"
        result = runner.invoke(app, ["report", *WINDOW, "-f", fmt, "-o", str(target)])
        assert result.exit_code == 0, result.output
        assert result.stdout == ""
        assert str(target) in result.stderr
        text = target.read_text(encoding="utf-8")
        assert text.strip()
        assert "\x1b[" not in text  # no terminal colours in files
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.count("<svg") >= 5


def test_seats_set_changes_the_report(runner: CliRunner, loaded_db: Path) -> None:
    result = runner.invoke(app, ["seats", "set", "globex", "12"])
    assert result.exit_code == 0, result.output
    assert "globex: 12 seats" in result.stdout
    report = json.loads(runner.invoke(app, ["report", "-f", "json"]).stdout)
    globex = next(row for row in report["accounts"] if row["account"] == "globex")
    assert globex["seats"] == 12


def test_seats_into_a_new_database(runner: CliRunner, socket_path: Path, tmp_path: Path) -> None:
    db = tmp_path / "fresh" / "uptake.db"
    result = runner.invoke(app, ["seats", "set", "acme", "3", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert db.exists()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["report", "--since", "2026-13-01"], 2, "--since: '2026-13-01' is not a date"),
        (["report", "--until", "11/01/2026"], 2, "--until: '11/01/2026' is not a date"),
        (["report", "--since", "2026-11-05", "--until", "2026-11-05"], 2, "is not before"),
        (["report", "--account", "nobody-knows"], 2, "unknown account"),
        (["seats", "set", " ", "3"], 2, "account must be"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    runner: CliRunner, loaded_db: Path, args: list[str], code: int, message: str
) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == code
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_negative_seats_are_refused(runner: CliRunner, isolated_env: dict[str, Path]) -> None:
    result = runner.invoke(app, ["seats", "set", "acme", "-3"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_missing_database_is_one_line_and_exit_1(
    runner: CliRunner, isolated_env: dict[str, Path]
) -> None:
    result = runner.invoke(app, ["report"])
    assert result.exit_code == 1
    assert result.stderr.startswith("usage: error: no database at ")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("output_format", ["table", "html", "csv"])
def test_features_of_user_less_events_only_render(
    runner: CliRunner, isolated_env: dict[str, Path], tmp_path: Path, output_format: str
) -> None:
    """A window whose features only user-less events used has null adoption: it renders."""
    from tests.cli._events import write_lines

    source = write_lines(
        tmp_path / "anonymous.jsonl",
        [{"ts": "2026-11-03T10:00:00Z", "kind": "feature", "name": "export_csv"}],
    )
    assert runner.invoke(app, ["import", str(source)]).exit_code == 0
    args = ["report", "--since", SINCE, "--until", UNTIL, "--format", output_format]
    result = runner.invoke(
        app, [*args, *(["--table", "features"] if output_format == "csv" else [])]
    )
    assert result.exit_code == 0, result.output
    assert "export_csv" in result.output


def test_config_core_features_feed_activation(
    runner: CliRunner, loaded_db: Path, tmp_path: Path
) -> None:
    """`[metrics] core_features` gives activation its core features; --core wins over it."""
    config = tmp_path / "uptake.toml"
    config.write_text('[metrics]\ncore_features = ["search", "export"]\n')
    args = ["report", "--since", SINCE, "--until", UNTIL, "--format", "json", "--config"]
    printed = json.loads(runner.invoke(app, [*args, str(config)]).stdout)
    assert printed["activation"]["core"] == ["export", "search"]
    chosen = runner.invoke(app, [*args, str(config), "--core", "search"])
    assert json.loads(chosen.stdout)["activation"]["core"] == ["search"]
    nothing = runner.invoke(app, [*args, str(config), "--core", ""])
    assert json.loads(nothing.stdout)["activation"] is None
