"""Time units every layer shares: UTC days in µs, and the gap that splits sessions.

Backend-neutral: the daemon (how far in the future an event may lie), the metrics (day
numbers, session splits) and every store (its rollup keys) use the same numbers.
"""

from __future__ import annotations

from datetime import date
from typing import Final

__all__ = ["DAY_US", "SESSION_GAP_US", "day_start_us"]

DAY_US: Final = 86_400_000_000
#: The inactivity gap that splits implicit sessions (docs/metrics.md), also the bucket width.
SESSION_GAP_US: Final = 30 * 60 * 1_000_000
_EPOCH_DATE: Final = date(1970, 1, 1)


def day_start_us(day: date) -> int:
    """Microseconds since the epoch at the start of the UTC ``day`` (its first event ts).

    >>> day_start_us(date(1970, 1, 2))
    86400000000
    """
    return (day - _EPOCH_DATE).days * DAY_US
