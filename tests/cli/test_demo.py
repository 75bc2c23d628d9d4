"""`usage demo` end to end: real daemon, real SDK host processes, report and HTML."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from uptake.protocol import ReportFilters
from uptake_cli.app import app
from uptake_cli.demo.simulation import CHURNING_ACCOUNT, UPSELL_ACCOUNT, Scenario, today_utc
from uptake_cli.report_cmd import fetch_report

pytestmark = pytest.mark.slow

DAYS = 14


@dataclass(frozen=True)
class DemoOutcome:
    result: Result
    scratch: Path  # the demo's temp dir lives here (TMPDIR for the run)
    workdir: Path  # the current directory of the run
    db: Path


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes whose arguments contain ``text`` (Linux /proc)."""
    found: list[str] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # the process exited meanwhile
        if text in argv:
            found.append(f"{entry.name}: {argv}")
    return found


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    """A short directory under /tmp used as TMPDIR by the demo (sockets need short paths)."""
    directory = Path(tempfile.mkdtemp(prefix="up"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _run_demo(scratch: Path, *args: str) -> Result:
    """Run `usage demo` in-process with its temp files under ``scratch``."""
    saved = tempfile.tempdir
    tempfile.tempdir = str(scratch / "tmp")
    os.makedirs(tempfile.tempdir, exist_ok=True)
    try:
        return CliRunner().invoke(
            app,
            ["demo", "--days", str(DAYS), "--processes", "2", *args],
            env={"COLUMNS": "200", "UPTAKE_SOCKET": None, "UPTAKE_DB": None},
        )
    finally:
        tempfile.tempdir = saved


@pytest.fixture(scope="module")
def demo(scratch: Path) -> DemoOutcome:
    workdir = scratch / "cwd"
    workdir.mkdir()
    db = scratch / "kept" / "demo.db"
    previous = Path.cwd()
    os.chdir(workdir)
    try:
        result = _run_demo(scratch, "--db", str(db))
    finally:
        os.chdir(previous)
    return DemoOutcome(result=result, scratch=scratch, workdir=workdir, db=db)


def test_demo_succeeds_and_writes_the_html_report(demo: DemoOutcome) -> None:
    assert demo.result.exit_code == 0, demo.result.output
    html = demo.workdir / "uptake-report.html"
    assert f"HTML report: {html}" in demo.result.output.replace("\n", "")
    text = html.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") or text.lower().startswith("<!doctype html>")
    assert "<svg" in text and CHURNING_ACCOUNT in text and UPSELL_ACCOUNT in text


def test_demo_prints_the_report_with_the_story_flagged(demo: DemoOutcome) -> None:
    lines = demo.result.output.splitlines()
    assert any("events stored" in line for line in lines)
    churning = [line for line in lines if line.strip().startswith(CHURNING_ACCOUNT + " ")]
    upsell = [line for line in lines if line.strip().startswith(UPSELL_ACCOUNT + " ")]
    assert churning and "churn_risk" in churning[0]
    assert upsell and "upsell" in upsell[0]
    assert "What to look for" in demo.result.output


def test_demo_stops_its_daemon_and_leaves_nothing_behind(demo: DemoOutcome) -> None:
    assert demo.result.exit_code == 0, demo.result.output
    assert _processes_mentioning(str(demo.scratch)) == []
    leftovers = list((demo.scratch / "tmp").iterdir())
    assert leftovers == []  # no socket, pidfile, log or spool left in the temp dir


def test_demo_keeps_the_database_given_with_db(demo: DemoOutcome) -> None:
    assert demo.db.exists()
    since, until = Scenario(days=DAYS, until=today_utc()).window()
    report = fetch_report(
        ReportFilters(since=since.isoformat(), until=until.isoformat()), demo.db, None
    )
    flags = {account["account"]: account["flags"] for account in report["accounts"]}
    assert "churn_risk" in flags[CHURNING_ACCOUNT]
    assert "upsell" in flags[UPSELL_ACCOUNT]
    assert [release["version"] for release in report["releases"]] == ["2.0"]


def test_demo_cleans_up_after_an_error(scratch: Path) -> None:
    blocker = scratch / "not-a-directory"
    blocker.write_text("a file where the report's directory should be")
    result = _run_demo(scratch, "--output", str(blocker / "report.html"))
    assert result.exit_code == 1
    assert "usage: error:" in result.output
    assert _processes_mentioning(str(scratch)) == []
    assert list((scratch / "tmp").iterdir()) == []


def test_demo_refuses_too_few_days(scratch: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--days", "3"])
    assert result.exit_code == 2
    assert "--days" in result.output


def test_demo_listens_on_the_socket_given_and_removes_it(scratch: Path) -> None:
    socket = scratch / "own.sock"
    output = scratch / "own.html"
    result = _run_demo(scratch, "--socket", str(socket), "--output", str(output))
    assert result.exit_code == 0, result.output
    assert output.stat().st_size > 0
    assert not socket.exists()
    assert _processes_mentioning(str(socket)) == []
