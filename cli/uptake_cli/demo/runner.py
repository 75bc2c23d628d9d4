"""The `usage demo` run itself (the command and its options are in ``demo_cmd``).

Kept apart from the command so that `usage` start-up, which builds every command, does
not load rich, the simulation, the renderers or the SDK for commands other than `demo`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Final

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from uptake.protocol import ReportFilters
from uptake_cli._errors import fail
from uptake_cli._present import Report
from uptake_cli.demo.simulation import CORE_FEATURES, DEFAULT_SEED, Scenario, today_utc
from uptake_cli.render_html import render_html
from uptake_cli.render_table import report_tables
from uptake_cli.report_cmd import fetch_report

__all__ = ["DemoRun", "run_demo"]

#: Seconds between two status polls for the progress bar.
_POLL_S: Final = 0.2
#: Seconds the daemon gets to answer after it was started.
_START_WAIT_S: Final = 30.0
#: Seconds the hosts get to send everything (far more than the demo needs on 2 cores).
_HOSTS_TIMEOUT_S: Final = 600.0


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
        filters = ReportFilters(
            since=since.isoformat(), until=until.isoformat(), core=list(CORE_FEATURES)
        )
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
    from uptake_aggregator.daemon.lifecycle import start_detached, stop_daemon

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
    from uptake.client import DaemonClient

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
                    "uptake_cli.demo.host",
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
