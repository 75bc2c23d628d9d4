"""The usage report (docs/metrics.md) as msgspec Structs, for clients that want typed access.

``build_report`` returns plain dicts in this shape (same field names, same order);
``msgspec.convert(report, Report)`` gives the typed form, and fails loudly when a report
breaks the contract, which the tests use to check every report they build.

Example::

    report = msgspec.convert(build_report(db, ReportFilters()), Report)
    report.product.mau
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "AccountRow",
    "Activation",
    "DauPoint",
    "FeatureRow",
    "GoalRow",
    "LifecycleWeek",
    "PowerUsers",
    "Product",
    "ReleaseFeature",
    "ReleaseMarker",
    "Report",
    "RetentionCohort",
    "UserRow",
    "Window",
]


class _Row(msgspec.Struct, forbid_unknown_fields=True):
    pass


class Window(_Row):
    """The half-open window ``[since, until)`` as ``YYYY-MM-DD``."""

    since: str
    until: str


class DauPoint(_Row):
    """Distinct active users on one day."""

    day: str
    users: int


class Product(_Row):
    """Product-wide figures over the report's population."""

    dau: list[DauPoint]
    wau: int
    mau: int
    stickiness: float
    usage_rate: float | None
    active_users: int
    known_users: int
    logins: int
    sessions: int
    avg_session_s: float | None
    median_session_s: float | None


class FeatureRow(_Row):
    """One feature used in the window."""

    name: str
    events: int
    users: int
    accounts: int
    adoption: float | None
    days_per_user: float | None
    quadrant: Literal["core", "power", "one_off", "improve"] | None


class AccountRow(_Row):
    """One account: seats, use, health and flags."""

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
    weekly_active: list[int]


class UserRow(_Row):
    """One known user."""

    user: str
    account: str | None
    active_days: int
    logins: int
    sessions: int
    avg_session_s: float | None
    features: int
    segment: Literal["daily", "frequent", "occasional", "inactive"]
    last_seen: str


class RetentionCohort(_Row):
    """Users whose first event fell in one ISO week, and their weekly return shares."""

    cohort: str
    size: int
    weeks: list[float]


class ReleaseFeature(_Row):
    """A feature's mean distinct daily users before and after a release."""

    name: str
    users_before: float
    users_after: float
    change: float | None


class ReleaseMarker(_Row):
    """A product release in the window, and its impact (docs/metrics.md, *Release impact*)."""

    day: str
    version: str
    after_days: int
    before: Window
    dau_before: float
    dau_after: float
    features: list[ReleaseFeature]


class LifecycleWeek(_Row):
    """One ISO week of the lifecycle: new, returning, resurrecting and dormant users."""

    week: str
    new: int
    returning: int
    resurrecting: int
    dormant: int
    pulse: float | None


class PowerUsers(_Row):
    """Users by their active days over the last 7 and 30 days before ``until``."""

    l7: list[int]
    l30: list[int]


class Activation(_Row):
    """New users reaching a core feature, and how fast (docs/metrics.md, *Activation*)."""

    core: list[str]
    new_users: int
    activated: int
    rate: float | None
    median_ttv_s: float | None
    by_day: list[float | None]


class GoalRow(_Row):
    """One goal for one subject (the product, an account, a feature): value against target."""

    metric: str
    scope: Literal["product", "account", "feature"]
    subject: str
    value: float | None
    target: float
    status: Literal["met", "warning", "critical", "unknown"]
    direction: Literal["at_least", "at_most"]
    #: The goal's stable name, e.g. ``account.utilization >= 0.7``.
    goal: str


class Report(_Row):
    """The whole usage report."""

    window: Window
    product: Product
    features: list[FeatureRow]
    accounts: list[AccountRow]
    users: list[UserRow]
    retention: list[RetentionCohort]
    releases: list[ReleaseMarker]
    lifecycle: list[LifecycleWeek]
    power_users: PowerUsers
    activation: Activation | None
    #: The config's goals evaluated on this report (empty without goals).
    goals: list[GoalRow] = msgspec.field(default_factory=list)
