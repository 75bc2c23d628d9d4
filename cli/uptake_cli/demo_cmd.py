"""`usage demo`: a simulated SaaS through the real SDK and daemon, then the report.

Everything happens in a private temporary directory: its own daemon socket, database,
log and SDK spool, so the demo never touches the user's real data unless ``--db`` (or
``--keep``) asks it to keep the database. Several host processes
(``python -m uptake_aggregator.demo_host``) each send their shard of the scenario
(``uptake_aggregator.simulation``) through ``uptake.record``, the way several app
servers share one daemon; a progress bar follows the daemon's ``status`` (events stored
against events expected). Then the `usage report` tables of the report window are
printed and the HTML report written. The daemon is stopped and the temporary directory
removed at the end, also on Ctrl-C, SIGTERM or an error.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Annotated, Final, Optional

import typer

from uptake_cli._errors import cli_errors, fail
from uptake_cli._present import Report
from uptake_cli.report_cmd import fetch_report

# rich, the simulation, the SDK and the renderers are imported when a demo runs: `usage`
# imports every command module at start-up, whichever command runs.
if TYPE_CHECKING:
    from rich.console import Console

    from uptake_aggregator.simulation import Scenario

__all__ = ["DemoRun", "demo", "register", "run_demo"]

# The simulation's defaults, repeated so that building the `demo` command's options does
# not import the simulation; tests/cli/test_startup.py checks they stay equal.
DEFAULT_DAYS: Final = 90
DEFAULT_SEED: Final = 7
MIN_DAYS: Final = 14

#: Seconds between two status polls for the progress bar.
_POLL_S: Final = 0.2
#: Seconds the daemon gets to answer after it was started.
_START_WAIT_S: Final = 30.0
#: Seconds the hosts get to send everything (far more than the demo needs on 2 cores).
_HOSTS_TIMEOUT_S: Final = 600.0
_MAX_PROCESSES: Final = 32


@dataclass(frozen=True)
class DemoRun:
    """What a demo run produced: the report, where the HTML went, how many events."""

    report: Report
    html: Path
    db: Path | None  # the database, when it is kept
    events: int
    seconds: float


@dataclass
class _Host:
    shard: int
    process: subprocess.Popen[str]
    log: Path
    events: int | None = None


def run_demo(
    *,
    days: int,
    processes: int,
    output: Path,
    db: Path | None = None,
    keep: bool = False,
    seed: int = DEFAULT_SEED,
    socket: Path | None = None,
    console: Console | None = None,
) -> DemoRun:
    """Run the whole demo; return what it produced. The daemon is always stopped.

    ``db``: store the events in this database (kept afterwards); ``keep`` without ``db``:
    keep the demo database in a new temporary directory and report its path. ``socket``:
    where the demo's private daemon listens (default: in the temporary directory; a live
    daemon's socket is refused, never taken over).
    """
    import tempfile

    from rich.console import Console

    from uptake.protocol import ReportFilters
    from uptake_aggregator.simulation import Scenario, today_utc
    from uptake_cli.render_html import render_html
    from uptake_cli.render_table import report_tables

    console = console or Console()
    started = time.monotonic()
    scenario = Scenario(days=days, seed=seed, until=today_utc())
    with ExitStack() as cleanup:
        cleanup.enter_context(_sigterm_as_interrupt())
        workdir = Path(tempfile.mkdtemp(prefix="up"))  # short: Unix socket paths are limited
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        socket = socket.resolve() if socket is not None else workdir / "d.sock"
        if db is None and keep:
            db = Path(tempfile.mkdtemp(prefix="uptake-demo-")) / "uptake.db"
        database = db.resolve() if db is not None else workdir / "uptake.db"
        database.parent.mkdir(parents=True, exist_ok=True)
        env = _private_env(workdir, socket, database)

        console.print(
            f"[bold]uptake demo[/]: {days} simulated days ({scenario.since} → "
            f"{scenario.until} UTC), {processes} host processes",
            highlight=False,
        )
        _start_daemon(socket, database, workdir, cleanup)
        baseline = _events_stored(socket)
        hosts = _start_hosts(
            scenario, processes=processes, socket=socket, workdir=workdir, env=env, cleanup=cleanup
        )
        expected = _follow(hosts, socket, baseline, console)
        stored = _events_stored(socket) - baseline

        since, until = scenario.window()
        filters = ReportFilters(since=since.isoformat(), until=until.isoformat())
        report = fetch_report(filters, database, socket)
        console.print(report_tables(report))
        console.print("[bold]What to look for[/] in this simulated product:", highlight=False)
        for line in scenario.story():
            console.print(f"  • {line}", highlight=False)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(render_html(report), encoding="utf-8")
        seconds = time.monotonic() - started
        console.print(
            f"{stored:,} new events stored ({expected:,} sent) in {seconds:.1f} s.",
            highlight=False,
        )
        console.print(f"HTML report: [bold]{output.resolve()}[/]", highlight=False)
        if db is not None:
            console.print(
                f"Demo database kept at {database}; explore it with "
                f"`usage report --db {database}`.",
                highlight=False,
                soft_wrap=True,
            )
    return DemoRun(
        report=report,
        html=output.resolve(),
        db=database if db is not None else None,
        events=stored,
        seconds=seconds,
    )


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C while the demo runs, so its cleanup still happens."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _private_env(workdir: Path, socket: Path, database: Path) -> dict[str, str]:
    """The environment of the host processes: every uptake path points into the demo dir."""
    env = dict(os.environ)
    env.update(
        UPTAKE_SOCKET=str(socket),
        UPTAKE_DB=str(database),
        UPTAKE_SPOOL_DIR=str(workdir / "spool"),
        UPTAKE_LOG_DIR=str(workdir),
        UPTAKE_TOKEN_FILE=str(workdir / "token"),
        UPTAKE_SPOOL="0",
    )
    return env


def _start_daemon(socket: Path, database: Path, workdir: Path, cleanup: ExitStack) -> None:
    from uptake_aggregator.lifecycle import start_detached, stop_daemon

    log = workdir / "daemon.log"
    pid = start_detached(
        ["--socket", str(socket), "--db", str(database), "--log-file", str(log)],
        socket,
        log,
        wait=_START_WAIT_S,
    )

    def stop() -> None:
        try:
            stop_daemon(socket)
        except Exception:
            # Every acknowledged event is committed, so a hard stop loses nothing.
            _kill(pid)
        _reap(pid)

    cleanup.callback(stop)


def _kill(pid: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _reap(pid: int, timeout: float = 10.0) -> None:
    """Wait until the daemon process is gone (it is our child: reap it, leave no zombie).

    ``stop_daemon`` returns once the daemon released its pidfile, a moment before the
    process itself has exited.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # already reaped elsewhere: poll until it is gone
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            done = 0
        if done:
            return
        if time.monotonic() > deadline:
            _kill(pid)
            deadline = time.monotonic() + timeout
        time.sleep(0.02)


def _events_stored(socket: Path) -> int:
    from uptake_aggregator.client import DaemonClient

    with DaemonClient(socket, timeout=5.0) as client:
        status = client.status()
    return int(status["events_stored"])


def _start_hosts(
    scenario: Scenario,
    *,
    processes: int,
    socket: Path,
    workdir: Path,
    env: dict[str, str],
    cleanup: ExitStack,
) -> list[_Host]:
    hosts: list[_Host] = []

    def stop_hosts() -> None:
        for host in hosts:
            if host.process.poll() is None:
                host.process.terminate()
        for host in hosts:
            try:
                host.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                host.process.kill()
                host.process.wait()
            if host.process.stdout is not None:
                host.process.stdout.close()

    cleanup.callback(stop_hosts)
    for shard in range(processes):
        log = workdir / f"host-{shard}.log"
        with open(log, "wb") as stderr:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uptake_aggregator.demo_host",
                    "--socket",
                    str(socket),
                    "--shard",
                    str(shard),
                    "--shards",
                    str(processes),
                    "--days",
                    str(scenario.days),
                    "--seed",
                    str(scenario.seed),
                    "--until",
                    scenario.until.isoformat(),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
                text=True,
            )
        hosts.append(_Host(shard=shard, process=process, log=log))
    return hosts


def _announced(stdout: IO[str] | None) -> int | None:
    """Read a host's ``events N`` line (None when it died first)."""
    line = stdout.readline() if stdout is not None else ""
    parts = line.split()
    if len(parts) == 2 and parts[0] == "events" and parts[1].isdigit():
        return int(parts[1])
    return None


def _follow(hosts: list[_Host], socket: Path, baseline: int, console: Console) -> int:
    """Show progress until every host has exited; return the events they sent."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    for host in hosts:
        host.events = _announced(host.process.stdout)
        if host.events is None:
            _host_failed(host)
    expected = sum(host.events or 0 for host in hosts)
    deadline = time.monotonic() + _HOSTS_TIMEOUT_S
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events stored"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("simulating", total=expected)
        while True:
            running = [host for host in hosts if host.process.poll() is None]
            for host in hosts:
                if host.process.returncode not in (None, 0):
                    _host_failed(host)
            stored = _events_stored(socket) - baseline
            progress.update(task, completed=min(stored, expected))
            if not running:
                break
            if time.monotonic() > deadline:
                fail(f"the demo hosts did not finish within {_HOSTS_TIMEOUT_S:g} s")
            time.sleep(_POLL_S)
        # A re-run into a kept database stores duplicates once: the hosts are done anyway.
        progress.update(task, completed=expected)
    return expected


def _host_failed(host: _Host) -> None:
    code = host.process.wait()
    try:
        tail = host.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
    except OSError:
        tail = []
    detail = " | ".join(tail) or "no output"
    fail(f"demo host {host.shard} failed (exit code {code}): {detail}")


def demo(  # noqa: PLR0917 - typer maps each parameter to an option
    days: Annotated[
        int,
        typer.Option(min=MIN_DAYS, max=365, help="Days of usage to simulate, up to today (UTC)."),
    ] = DEFAULT_DAYS,
    processes: Annotated[
        int,
        typer.Option(
            min=1, max=_MAX_PROCESSES, help="Host processes sending events through the SDK."
        ),
    ] = 4,
    keep: Annotated[
        bool, typer.Option(help="Keep the demo database afterwards and print its path.")
    ] = False,
    db: Annotated[
        Optional[Path],
        typer.Option(
            help="Store the demo's events in this database and keep it (default: a "
            "temporary one, removed at the end).",
            dir_okay=False,
        ),
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the HTML report.", dir_okay=False)
    ] = Path("uptake-report.html"),
    seed: Annotated[int, typer.Option(help="Seed of the simulation.")] = DEFAULT_SEED,
    socket: Annotated[
        Optional[Path],
        typer.Option(
            help="Where the demo's private daemon listens (default: a temporary socket). "
            "Like --db, it ignores UPTAKE_SOCKET so the demo never joins your real daemon.",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Simulate a SaaS through the real SDK and daemon, print the report, write the HTML.

    Runs a private daemon on a temporary socket and database (your real data is never
    touched), several host processes that send the simulated events, then prints the
    `usage report` tables for the last 30 days (half the simulated days when fewer than
    60) and writes the HTML report.

    Examples:

        usage demo

        usage demo --days 30 --processes 2 -o /tmp/report.html
    """
    with cli_errors():
        try:
            run_demo(
                days=days,
                processes=processes,
                output=output,
                db=db,
                keep=keep,
                seed=seed,
                socket=socket,
            )
        except KeyboardInterrupt:
            typer.echo("usage: demo interrupted; the daemon was stopped", err=True)
            raise typer.Exit(130) from None


def register(app: typer.Typer) -> None:
    """Add `usage demo` to the app."""
    app.command("demo")(demo)
