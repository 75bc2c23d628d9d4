"""``AlertLog``: the history of goal status changes, kept next to the events.

The log is what makes alerts edge-triggered: an evaluation records a change only when a
subject's status differs from the last one recorded for it, and only recorded changes
are announced. Recording is one transaction, so the daemon's schedule and a
`usage check --record` never both announce the same change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["AlertLog", "GoalReading", "IsChange", "StatusChange"]


@dataclass(frozen=True)
class GoalReading:
    """One goal's status for one subject at an evaluation."""

    goal: str
    subject: str
    status: str
    value: float | None


@dataclass(frozen=True)
class StatusChange:
    """A recorded change: at ``ts_us`` (µs) ``goal`` of ``subject`` went ``before`` -> ``after``.

    ``before`` is None when nothing was recorded for the subject before.
    """

    ts_us: int
    goal: str
    subject: str
    before: str | None
    after: str
    value: float | None


#: Decides whether going from the last recorded status (None: none yet) to a new one is a change.
IsChange = Callable[[str | None, str], bool]


class AlertLog(Protocol):
    """The goal status history of one store."""

    def record(
        self, ts_us: int, readings: Sequence[GoalReading], is_change: IsChange
    ) -> list[StatusChange]:
        """Record, in one transaction, every reading that ``is_change``; return those changes."""
        ...

    def changes(self, since_us: int | None = None) -> list[StatusChange]:
        """The recorded changes at or after ``since_us`` (all when None), oldest first."""
        ...
