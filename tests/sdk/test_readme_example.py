"""The README's "Testing your instrumentation" examples, kept runnable (mirror any change)."""

from __future__ import annotations

import uptake
from uptake.testing import UsageEvents, recording


def checkout(user: str, account: str, items: int, coupon: str | None = None) -> float:
    uptake.identify(user=user, account=account)
    with uptake.session():
        uptake.track("checkout", items=items)
        if coupon:
            uptake.track("coupon_applied", code=coupon)
    return items * 9.99


def test_checkout_is_tracked_once_per_call(usage_events: UsageEvents) -> None:
    checkout("u1", "acme", items=3)

    usage_events.assert_tracked("checkout", user="u1", account="acme", items=3, count=1)
    usage_events.assert_tracked(kind="session_start", user="u1")
    usage_events.assert_not_tracked("coupon_applied")


def test_coupon_use_is_tracked(usage_events: UsageEvents) -> None:
    checkout("u2", "globex", items=1, coupon="WELCOME")

    usage_events.assert_tracked("coupon_applied", user="u2", code="WELCOME")
    assert usage_events.features == ["checkout", "coupon_applied"]


def test_oversized_props_are_rejected(usage_events: UsageEvents) -> None:
    uptake.track("search", **{f"filter{i}": i for i in range(40)})  # more than 32 props
    usage_events.assert_not_tracked("search")
    assert usage_events.stats().rejected_by_reason == {"too_many_props": 1}


def test_recording_outside_pytest_fixtures() -> None:
    with recording() as usage:
        checkout("u1", "acme", items=2)
    usage.assert_tracked("checkout", items=2)
