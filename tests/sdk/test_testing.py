"""uptake.testing: the usage_events fixture, recording(), assertions and their messages."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import uptake
from uptake.testing import ANY, RecordingSink, UsageEvents, recording


def export_report(user: str, account: str, fmt: str) -> None:
    """A stand-in for host-app code."""
    uptake.identify(user=user, account=account)
    with uptake.session():
        uptake.track("export", format=fmt)


def test_fixture_records_synchronously(usage_events: UsageEvents) -> None:
    export_report("u1", "acme", "csv")
    # no flush, no sleep: recording is synchronous
    usage_events.assert_tracked("export", user="u1", account="acme", count=1)
    usage_events.assert_tracked("export", format="csv")
    usage_events.assert_tracked(kind="session_start", user="u1")
    usage_events.assert_not_tracked("export", user="u2")
    usage_events.assert_not_tracked("import")
    usage_events.assert_not_tracked("export", format="pdf")
    assert usage_events.features == ["export"]
    assert [event.kind for event in usage_events.events] == [
        "session_start",
        "feature",
        "session_end",
    ]


def test_clear_and_count(usage_events: UsageEvents) -> None:
    uptake.track("a")
    usage_events.clear()
    uptake.track("a")
    uptake.track("a")
    usage_events.assert_tracked("a", count=2)
    usage_events.assert_tracked("a", user=None, count=2)  # None means "no user", ANY is any
    usage_events.assert_tracked("a", user=ANY)


def test_each_test_starts_without_identity(usage_events: UsageEvents) -> None:
    uptake.identify(user="leaky")
    uptake.track("x")
    usage_events.assert_tracked("x", user="leaky")


def test_identity_did_not_leak_from_the_previous_test(usage_events: UsageEvents) -> None:
    uptake.track("y")
    usage_events.assert_tracked("y", user=None)


def test_other_kinds(usage_events: UsageEvents) -> None:
    uptake.login(user="u1", account="acme")
    uptake.set_seats("acme", 10)
    uptake.mark_release("2.0.0")
    uptake.logout()
    usage_events.assert_tracked(kind="login", user="u1", count=1)
    usage_events.assert_tracked(kind="release", name="2.0.0")
    seats = usage_events.assert_tracked(kind="seats", account="acme")
    assert seats[0].value == 10
    usage_events.assert_tracked(kind="logout", user="u1")


def test_invalid_calls_are_not_recorded_but_counted(usage_events: UsageEvents) -> None:
    uptake.track("ok", **{f"p{i}": i for i in range(40)})
    usage_events.assert_not_tracked("ok")
    assert usage_events.stats().rejected_by_reason == {"too_many_props": 1}


def test_failure_messages_list_what_was_recorded(usage_events: UsageEvents) -> None:
    uptake.identify(user="u1")
    uptake.track("export", format="csv")
    with pytest.raises(AssertionError, match="recorded:\n  feature 'export' user='u1'"):
        usage_events.assert_tracked("import")
    with pytest.raises(AssertionError, match="expected 2 event"):
        usage_events.assert_tracked("export", count=2)
    with pytest.raises(AssertionError, match="expected no event matching feature 'export'"):
        usage_events.assert_not_tracked("export")


def test_recording_restores_the_previous_default() -> None:
    before = uptake.default_client()
    with recording(app="t") as usage:
        uptake.track("inside")
        assert uptake.default_client() is usage.client
    assert uptake.default_client() is before
    assert usage.events[0].source == "t"


def test_recording_sink_with_a_background_client() -> None:
    sink = RecordingSink()
    client = uptake.Client(sink=sink, flush_interval=0.05)
    client.track("async_mode")
    assert client.flush(5.0)
    assert [event.name for event in sink.events] == ["async_mode"]
    client.shutdown(1.0)


def test_plugin_is_registered_by_entry_point(tmp_path: Path) -> None:
    (tmp_path / "test_host.py").write_text(
        textwrap.dedent(
            """
            import uptake

            def checkout(user):
                uptake.identify(user=user, account="acme")
                uptake.track("checkout", items=3)

            def test_checkout(usage_events):
                checkout("u7")
                usage_events.assert_tracked("checkout", user="u7", items=3, count=1)
            """
        )
    )
    env = {**os.environ, "UPTAKE_SOCKET": str(tmp_path / "none.sock")}
    env["UPTAKE_SPOOL_DIR"] = str(tmp_path / "spool")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
