"""``uptake.current_context()`` / ``restore_context()``: carry an identity, record nothing."""

from __future__ import annotations

import pytest

import uptake
from uptake.testing import UsageEvents


def test_round_trip_records_nothing(usage_events: UsageEvents) -> None:
    uptake.identify(user="u1", account="acme", session="s1")
    saved = uptake.current_context()
    assert saved == ("u1", "acme", "s1")
    uptake.restore_context((None, None, None))
    assert uptake.current_context() == (None, None, None)
    uptake.restore_context(saved)
    uptake.track("export_csv")
    [event] = usage_events.events
    assert (event.user, event.account, event.session) == ("u1", "acme", "s1")


@pytest.mark.parametrize("bad", [("u1", "acme"), ["u1", None, None], (1, None, None), None])
def test_malformed_contexts_mean_nobody_and_are_logged(
    bad: object, caplog: pytest.LogCaptureFixture
) -> None:
    uptake.restore_context(("u1", None, None))
    uptake.restore_context(bad)  # type: ignore[arg-type]
    assert uptake.current_context() == (None, None, None)
    assert "restore_context() needs" in caplog.text
