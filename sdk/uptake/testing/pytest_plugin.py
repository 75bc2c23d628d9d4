"""pytest plugin (entry point ``pytest11``): the ``usage_events`` fixture.

Registered automatically when uptake is installed; it only imports the SDK and defines a
fixture, so it costs nothing to test suites that do not use it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from uptake.testing._recording import UsageEvents, recording

__all__ = ["usage_events"]


@pytest.fixture
def usage_events() -> Iterator[UsageEvents]:
    """Record every ``uptake.*`` call of the test in memory, synchronously.

    Offers ``.events``, ``.features``, ``assert_tracked(name, user=, account=, count=)``,
    ``assert_not_tracked(...)``, ``find(...)``, ``stats()`` and ``clear()``.
    """
    with recording() as usage:
        yield usage
