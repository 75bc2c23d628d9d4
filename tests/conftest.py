"""Suite-wide settings: hypothesis profiles sized for a 2-core CI machine; typer apps built once;
the PostgreSQL cluster."""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
import typer.testing
from hypothesis import HealthCheck, settings
from typer.main import get_command

from tests.support.postgres import PostgresCluster, find_pg_bin

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

_commands: weakref.WeakKeyDictionary[typer.Typer, Any] = weakref.WeakKeyDictionary()


def _command_once(app: typer.Typer) -> Any:
    """The click command of ``app``, built on its first ``CliRunner.invoke`` only.

    typer's runner rebuilds it from the signatures of every command on each invoke (~65 ms
    for the `usage` app, most of an invoke's cost); the `usage` process builds it once.
    """
    command = _commands.get(app)
    if command is None:
        command = _commands[app] = get_command(app)
    return command


typer.testing._get_command = _command_once  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """The session's throwaway PostgreSQL cluster (tests.support.postgres), always stopped."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        missing = "PostgreSQL is not installed (apt-get install postgresql; .ci/run does)"
        if os.environ.get("UPTAKE_REQUIRE_POSTGRES"):
            pytest.fail(missing)
        pytest.skip(missing)
    cluster = PostgresCluster(bin_dir)
    try:
        yield cluster.start()
    finally:
        cluster.destroy()


@pytest.fixture
def pg_url(postgres: PostgresCluster) -> str:
    """The URL (with password) of a fresh empty database of this test alone."""
    return postgres.new_database()
