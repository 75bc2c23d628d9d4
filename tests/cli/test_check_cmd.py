"""`usage check`, goals in `usage report`, and `usage alerts` on known data.

The tiny product of tests.cli._events over [SINCE, UNTIL): MAU 6; account acme has 4
seats and 3 active users (utilization 0.75), globex has no seats (utilization null).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.cli._events import SINCE, UNTIL, write_lines
from uptake_cli.app import app

WINDOW = ["--since", SINCE, "--until", UNTIL]


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "uptake.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _goal(metric: str, scope: str, target: float, direction: str = "at_least", **extra: Any) -> str:
    lines = ["[[goal]]", f'metric = "{metric}"', f'scope = "{scope}"', f"target = {target}"]
    lines.append(f'direction = "{direction}"')
    lines += [f"{key} = {json.dumps(value)}" for key, value in extra.items()]
    return "\n".join(lines) + "\n\n"


def _check(runner: CliRunner, config: Path, *args: str) -> Any:
    return runner.invoke(app, ["check", "--config", str(config), *WINDOW, *args])


@pytest.mark.usefixtures("loaded_db")
def test_all_met_exits_0(runner: CliRunner, tmp_path: Path) -> None:
    config = _config(
        tmp_path, _goal("mau", "product", 6) + _goal("utilization", "account", 0.75, only=["acme"])
    )
    result = _check(runner, config)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "2 of 2 goals met" in result.stderr


@pytest.mark.usefixtures("loaded_db")
def test_a_warning_exits_1_and_unknowns_are_listed(runner: CliRunner, tmp_path: Path) -> None:
    config = _config(
        tmp_path, _goal("utilization", "account", 1.0) + _goal("users", "feature", 5, only=["nope"])
    )
    result = _check(runner, config)
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines() == [
        "warning   account acme: utilization 0.75 (at least 1)",
        "unknown   account globex: utilization — (at least 1)",
        "unknown   feature nope: users — (at least 5)",
    ]


@pytest.mark.usefixtures("loaded_db")
def test_a_critical_exits_3(runner: CliRunner, tmp_path: Path) -> None:
    config = _config(
        tmp_path, _goal("utilization", "account", 1.0) + _goal("mau", "product", 3, "at_most")
    )
    result = _check(runner, config)
    assert result.exit_code == 3, result.output
    assert result.stdout.splitlines()[0] == "critical  product: mau 6 (at most 3)"


@pytest.mark.usefixtures("loaded_db")
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[goal]]\nmetric = "mau"\nscope = "product"\ntarget = "six"\n',
            "uptake.toml:4: [[goal]] #1 target",
        ),
        (
            '[[goal]]\nmetric = "maus"\nscope = "product"\ntarget = 6\n',
            "valid product metrics: active_users",
        ),
        ("[metrics]\n", "nothing to check"),
    ],
)
def test_bad_input_exits_2(runner: CliRunner, tmp_path: Path, text: str, message: str) -> None:
    result = _check(runner, _config(tmp_path, text))
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_a_bad_config_stops_usage_report_too(runner: CliRunner, tmp_path: Path) -> None:
    config = _config(tmp_path, '[alerts]\nevery = "often"\n')
    result = runner.invoke(app, ["report", "--config", str(config), "--format", "json"])
    assert result.exit_code == 2
    assert "uptake.toml:2: [alerts] every" in result.stderr


@pytest.mark.usefixtures("loaded_db")
def test_report_shows_the_goals(runner: CliRunner, tmp_path: Path) -> None:
    config = _config(tmp_path, _goal("utilization", "account", 1.0))
    base = ["report", "--config", str(config), *WINDOW]
    printed = json.loads(runner.invoke(app, [*base, "--format", "json"]).stdout)
    assert printed["goals"] == [
        {"metric": "utilization", "scope": "account", "subject": "acme", "value": 0.75,
         "target": 1.0, "status": "warning", "direction": "at_least",
         "goal": "account.utilization >= 1"},
        {"metric": "utilization", "scope": "account", "subject": "globex", "value": None,
         "target": 1.0, "status": "unknown", "direction": "at_least",
         "goal": "account.utilization >= 1"},
    ]  # fmt: skip
    csv_text = runner.invoke(app, [*base, "--format", "csv", "--table", "goals"]).stdout
    assert csv_text.splitlines()[:2] == [
        "metric,scope,subject,value,target,status,direction,goal",
        "utilization,account,acme,0.75,1.0,warning,at_least,account.utilization >= 1",
    ]
    html = runner.invoke(app, [*base, "--format", "html"]).stdout
    assert '<section id="goals"><h2>Goals</h2>' in html
    assert "acme · utilization" in html
    table = runner.invoke(app, base).stdout
    assert "Goals" in table and "75%" in table and "warning" in table


@pytest.fixture
def baseline(runner: CliRunner, loaded_db: Path, tmp_path: Path) -> dict[str, Any]:
    """The report of the known data, as `usage report --format json` saves it."""
    result = runner.invoke(app, ["report", *WINDOW, "--format", "json"])
    saved: dict[str, Any] = json.loads(result.stdout)
    return saved


def _gate(runner: CliRunner, tmp_path: Path, baseline: dict[str, Any], *rules: str) -> Any:
    path = tmp_path / "base.json"
    path.write_text(json.dumps(baseline))
    args = ["check", *WINDOW, "--baseline", str(path)]
    for rule in rules:
        args += ["--fail-on", rule]
    return runner.invoke(app, args)


def test_the_baseline_gate(runner: CliRunner, tmp_path: Path, baseline: dict[str, Any]) -> None:
    same = _gate(runner, tmp_path, baseline, "stickiness<-10%", "accounts.utilization<0")
    assert same.exit_code == 0, same.output
    baseline["product"]["stickiness"] *= 1.5  # now down by a third against it
    baseline["accounts"][0]["utilization"] = 0.9  # acme: 0.9 -> 0.75
    loose = _gate(runner, tmp_path, baseline, "stickiness<-50%", "accounts.utilization<-0.2")
    assert loose.exit_code == 0, loose.output
    assert "skipped   accounts.utilization<-0.2 [globex]: no value in the baseline" in loose.stdout
    tight = _gate(
        runner, tmp_path, baseline, "product.stickiness<-10%", "accounts[acme].utilization<-0.1"
    )
    assert tight.exit_code == 3, tight.output
    assert tight.stdout.splitlines() == [
        "regressed product.stickiness<-10%: 0.7857 -> 0.5238 (change -33.33%)",
        "regressed accounts[acme].utilization<-0.1: 0.9 -> 0.75 (change -0.15)",
    ]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (["stickiness=-10%"], "is not a rule; write PATH OP CHANGE"),
        (["stickyness<-10%"], "'stickyness' is not a numeric product metric; valid: active_users"),
        (["accounts.band<0"], "'band' is not a numeric account metric"),
        (["product[x].mau<0"], "product takes no [NAME]"),
    ],
)
def test_a_bad_rule_exits_2(
    runner: CliRunner, tmp_path: Path, baseline: dict[str, Any], rules: list[str], message: str
) -> None:
    result = _gate(runner, tmp_path, baseline, *rules)
    assert result.exit_code == 2
    assert message in result.stderr


@pytest.mark.usefixtures("loaded_db")
def test_a_bad_baseline_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    not_json = tmp_path / "base.json"
    not_json.write_text("{")
    result = runner.invoke(app, ["check", "--baseline", str(not_json), "--fail-on", "mau<0"])
    assert result.exit_code == 2 and "is not JSON" in result.stderr
    not_report = tmp_path / "other.json"
    not_report.write_text("[1, 2]")
    result = runner.invoke(app, ["check", "--baseline", str(not_report), "--fail-on", "mau<0"])
    assert result.exit_code == 2 and "is not a usage report" in result.stderr
    result = runner.invoke(app, ["check", "--fail-on", "mau<0"])
    assert result.exit_code == 2 and "--fail-on needs --baseline" in result.stderr


def _recent_events(path: Path, users: int) -> Path:
    """`users` users of account acme active yesterday (the default window holds them)."""
    from datetime import datetime, timedelta, timezone

    yesterday = (datetime.now(timezone.utc) - timedelta(days=1)).replace(microsecond=0)
    lines: list[dict[str, Any]] = [
        {"ts": yesterday.isoformat(), "kind": "seats", "account": "acme", "value": 4}
    ]
    lines += [
        {"ts": (yesterday + timedelta(minutes=n)).isoformat(), "kind": "login",
         "user": f"u{n}", "account": "acme"}
        for n in range(users)
    ]  # fmt: skip
    return write_lines(path, lines)


def test_record_stores_each_change_once_and_runs_the_command(
    runner: CliRunner, isolated_env: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "alerts.jsonl"
    command = [
        sys.executable,
        "-c",
        f"import sys; open({str(out)!r}, 'a').write(sys.stdin.read() + '\\n')",
    ]
    config = _config(
        tmp_path,
        _goal("utilization", "account", 1.0) + f"[alerts]\ncommand = {json.dumps(command)}\n",
    )
    assert (
        runner.invoke(app, ["import", str(_recent_events(tmp_path / "a.jsonl", 1))]).exit_code == 0
    )
    for _ in range(2):  # critical twice: one change
        result = runner.invoke(app, ["check", "--config", str(config), "--record"])
        assert result.exit_code == 3, result.output
    events = tmp_path / "b.jsonl"
    assert runner.invoke(app, ["import", str(_recent_events(events, 4))]).exit_code == 0
    result = runner.invoke(app, ["check", "--config", str(config), "--record"])
    assert result.exit_code == 0, result.output
    assert "recorded 1 status changes" in result.stderr
    listed = json.loads(runner.invoke(app, ["alerts", "--format", "json"]).stdout)
    assert [(row["subject"], row["from"], row["to"], row["value"]) for row in listed] == [
        ("acme", None, "critical", 0.25),
        ("acme", "critical", "met", 1.0),
    ]
    delivered = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(row["from"], row["to"], row["goal"], row["target"]) for row in delivered] == [
        (None, "critical", "account.utilization >= 1", 1.0),
        ("critical", "met", "account.utilization >= 1", 1.0),
    ]
    table = runner.invoke(app, ["alerts"]).stdout
    assert "critical" in table and "none" in table
    assert (
        runner.invoke(app, ["alerts", "--since", "2999-01-01", "--format", "json"]).stdout.strip()
        == "[]"
    )
    refused = runner.invoke(app, ["check", "--config", str(config), "--record", *WINDOW])
    assert refused.exit_code == 2 and "--record evaluates the default report" in refused.stderr
