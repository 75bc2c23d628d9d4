"""The DESIGN §6 report schema as msgspec Structs, to validate reports in tests.

``forbid_unknown_fields`` and required fields make a report fail validation when it adds,
drops or renames a field, or puts a null where §6 does not allow one.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = ["UsageReport", "validate_report"]


class _Strict(msgspec.Struct, forbid_unknown_fields=True):
    pass


class Window(_Strict):
    since: str
    until: str


class DayCount(_Strict):
    day: str
    users: int


class Product(_Strict):
    dau: list[DayCount]
    wau: int
    mau: int
    stickiness: float
    usage_rate: float
    active_users: int
    known_users: int
    logins: int
    sessions: int
    avg_session_s: float | None
    median_session_s: float | None


class Feature(_Strict):
    name: str
    events: int
    users: int
    accounts: int
    adoption: float


class Account(_Strict):
    account: str
    seats: int | None
    active_users: int
    utilization: float | None
    adoption_rate: float | None
    growth: float | None
    integrations: int
    breadth: int
    health: int
    band: Literal["green", "yellow", "red"]
    flags: list[Literal["churn_risk", "upsell", "idle_seats"]]


class User(_Strict):
    user: str
    account: str | None
    active_days: int
    logins: int
    sessions: int
    avg_session_s: float | None
    features: int
    segment: Literal["daily", "frequent", "occasional", "inactive"]
    last_seen: str


class Cohort(_Strict):
    cohort: str
    size: int
    weeks: list[float]


class Release(_Strict):
    day: str
    version: str


class UsageReport(_Strict):
    window: Window
    product: Product
    features: list[Feature]
    accounts: list[Account]
    users: list[User]
    retention: list[Cohort]
    releases: list[Release]


def validate_report(report: dict[str, Any]) -> UsageReport:
    """Return ``report`` as a ``UsageReport``; raise ``msgspec.ValidationError`` if off-schema."""
    return msgspec.convert(report, UsageReport)
