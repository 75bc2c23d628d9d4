"""``build_report``: the usage report (docs/metrics.md), computed from a store on request."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import msgspec

from uptake.protocol import ReportFilters
from uptake_aggregator.collector import collector_paused
from uptake_aggregator.metrics.accounts import account_rows, integration_uses
from uptake_aggregator.metrics.activity import (
    UserActivity,
    dau_series,
    previous_active,
    trailing_active,
    user_activity,
)
from uptake_aggregator.metrics.context import ReportContext, load_context, rebind
from uptake_aggregator.metrics.engagement import (
    WeeklyActivity,
    activation,
    add_feature_frequency,
    add_release_impact,
    add_weekly_active,
    lifecycle_rows,
    power_users,
    weekly_activity,
)
from uptake_aggregator.metrics.features import FeatureUsage, feature_rows, feature_usage
from uptake_aggregator.metrics.parallel import ForkedPart, can_fork
from uptake_aggregator.metrics.retention import retention_rows
from uptake_aggregator.metrics.session_figures import SessionStats, session_stats
from uptake_aggregator.store import open_store
from uptake_aggregator.store.reports import ReportStore
from uptake_aggregator.units import DAY_US
from uptake_aggregator.window import Window, day_date, resolve_window

__all__ = ["build_report", "segment"]

_UNKNOWN = UserActivity(0, 0, 0)
#: Windows up to this many days long hand two more reads to the forked child (see
#: ``_ChildPart``): the child's session figures scale with the window, the parent's reads
#: with the whole history (known users, feature spans), so for a short window the child
#: would wait idle. Measured on 10M events over 90 days: for a 30-day window the parent
#: took ~0.9 s of CPU and the child ~0.6 s; for the whole 90 days the child is the
#: longer side and keeps its part as it is.
_CHILD_READS_MAX_DAYS = 45


def segment(active_days: int, window_days: int) -> str:
    """Frequency segment: daily (>= 80% of days), frequent (>= 40%), occasional, inactive.

    >>> segment(24, 30), segment(12, 30), segment(1, 30), segment(0, 30)
    ('daily', 'frequent', 'occasional', 'inactive')
    """
    if active_days * 5 >= window_days * 4:
        return "daily"
    if active_days * 5 >= window_days * 2:
        return "frequent"
    return "occasional" if active_days > 0 else "inactive"


def iso_utc(ts: int) -> str:
    """ISO-8601 UTC text of a µs timestamp, e.g. ``2026-01-31T09:30:00.000001+00:00``.

    The text of ``datetime.isoformat()`` (no fraction when the microseconds are 0),
    built from cached day texts: a report writes one per known user.

    >>> iso_utc(1_769_851_800_000_001), iso_utc(0)
    ('2026-01-31T09:30:00.000001+00:00', '1970-01-01T00:00:00+00:00')
    """
    day, micros = divmod(ts, DAY_US)
    date_text = _DAY_TEXTS.get(day)
    if date_text is None:
        date_text = _DAY_TEXTS[day] = day_date(day).isoformat()
    seconds, micro = divmod(micros, 1_000_000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    fraction = f".{micro:06d}" if micro else ""
    return f"{date_text}T{hours:02d}:{minutes:02d}:{seconds:02d}{fraction}+00:00"


#: ISO texts of the days ``iso_utc`` has seen (a few hundred at most per report).
_DAY_TEXTS: dict[int, str] = {}


def _product(ctx: ReportContext, counts: _Counts) -> dict[str, Any]:
    """The ``product`` figures, session fields left empty (``_complete`` fills them)."""
    window = ctx.window
    dau = counts.dau
    activity = counts.activity
    users = ctx.population_users()
    active = sum(1 for user in users if user in activity)
    return {
        "dau": [
            {"day": day_date(window.start + offset).isoformat(), "users": count}
            for offset, count in enumerate(dau)
        ],
        "wau": counts.wau,
        "mau": counts.mau,
        "stickiness": sum(dau) / window.days / active if active else 0.0,
        "usage_rate": active / len(users) if users else None,
        "active_users": active,
        "known_users": len(users),
        "logins": sum(activity.get(user, _UNKNOWN).logins for user in users),
        "sessions": 0,
        "avg_session_s": None,
        "median_session_s": None,
    }


def _users(
    ctx: ReportContext,
    activity: dict[str, UserActivity],
    usage: FeatureUsage,
) -> list[dict[str, Any]]:
    """The ``users`` rows, session fields left at none (``_add_sessions`` fills them)."""
    rows = []
    for user in ctx.population_users():
        info = ctx.known[user]
        days = activity.get(user, _UNKNOWN)
        rows.append(
            {
                "user": user,
                "account": info.account,
                "active_days": days.active_days,
                "logins": days.logins,
                "sessions": 0,
                "avg_session_s": None,
                "features": usage.user_counts.get(user, 0),
                "segment": segment(days.active_days, ctx.window.days),
                "last_seen": iso_utc(info.last_ts),
            }
        )
    return rows


def _add_sessions(rows: list[dict[str, Any]], sessions: SessionStats) -> None:
    """Fill the session fields of ``_users`` rows."""
    per_user = sessions.per_user
    for row in rows:
        found = per_user.get(row["user"])
        if found is not None:
            row["sessions"] = found[0]
            row["avg_session_s"] = sessions.user_mean_s(row["user"])


def _releases(ctx: ReportContext) -> list[dict[str, Any]]:
    """The ``releases`` rows, each with its impact (``engagement.add_release_impact``)."""
    rows: list[dict[str, Any]] = [
        {"day": iso_utc(ts)[:10], "version": version}
        for ts, version in ctx.source.releases(ctx.window)
    ]
    add_release_impact(ctx, rows)
    return rows


def build_report(
    db: Path | str | ReportStore,
    filters: ReportFilters,
    *,
    today: dt.date | None = None,
    parallel: bool = False,
    core_features: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Compute the usage report (docs/metrics.md) for ``filters`` from the store ``db``.

    ``db``: a database path or URL (``store.open_store``), or an open ``ReportStore``;
    it is only read. ``today`` (UTC) fixes the default window, for tests.
    ``core_features``: the product's core features for ``activation`` (the config
    file's ``[metrics] core_features``); ``filters.core`` (``--core``) wins when given,
    and with neither ``activation`` is null.
    ``parallel=True`` computes the session figures in a forked child process on another
    core (see ``metrics.parallel``); it is used only where forking is safe (a
    single-threaded caller, such as the CLI, and a store that allows it) and gives the
    same report. Raises ``QueryError`` for bad dates or an unknown account,
    ``StorageError`` when the store is missing or unreadable.

    Example::

        report = build_report(Path("uptake.db"), ReportFilters(since="2026-01-01"))
        report["product"]["mau"]
    """
    store: ReportStore = open_store(db) if isinstance(db, (str, Path)) else db
    window = resolve_window(filters.since, filters.until, today=today)
    # The collector switch is process-wide: paused only in a single-threaded process
    # (the CLI, the daemon's report worker); the forked child inherits the pause.
    core = filters.core if filters.core is not None else core_features
    with collector_paused(parallel and threading.active_count() == 1):
        return _build(store, window, filters, parallel=parallel, core=core)


def _build(
    store: ReportStore,
    window: Window,
    filters: ReportFilters,
    *,
    parallel: bool,
    core: Sequence[str] | None,
) -> dict[str, Any]:
    """``build_report`` once the window is known.

    An unfiltered report forks its child first thing, so loading the context (the known
    users) runs in parallel with the sessions; a filtered one needs the population in
    both processes and forks once the context is loaded.
    """
    source = store.report_source()
    child: ForkedPart[_ChildPart] | None = None
    offload = False  # the child reads the previous window's users and the integrations
    try:
        mark = source.events_stored()
        ctx: ReportContext | None = None
        if parallel and store.forks and can_fork():
            offload = window.days <= _CHILD_READS_MAX_DAYS
            if filters.user is not None or filters.account is not None:
                ctx = load_context(source, window, filters)  # the child needs the population
            # No snapshot may cross a fork (SQLite forbids using a connection in a
            # child): close, fork, then reopen. Both sides must read the snapshot
            # ``mark`` counted.
            source.close()
            child = ForkedPart.start(
                partial(_forked_part, store, mark, window, ctx, offload=offload), _ChildPart
            )
            source = store.report_source()
            reopened = source.events_stored()
            # A writer committed meanwhile: the child's answer goes unused, and a context
            # read before the fork is read again on this snapshot.
            ctx = rebind(ctx, source) if ctx is not None and reopened == mark else None
            mark = reopened
        if ctx is None:
            ctx = load_context(source, window, filters)
        counts = _Counts(ctx, previous=not offload)
        counts.run()
        # Everything that does not need the child's part, while the child works.
        partial_report, weekly = _assemble(ctx, counts, core, accounts=not offload)
        part: _ChildPart | None = None
        if child is not None:
            answer, child = child.result(), None
            if answer is not None and answer.mark == mark:
                part = answer
        if part is None:
            part = _ChildPart(mark, session_stats(ctx.source, ctx.window, ctx.known))
        if offload:
            previous = part.previous if part.previous is not None else previous_active(ctx)
            integrations = part.integrations
            if integrations is None:
                integrations = integration_uses(ctx)
            partial_report["accounts"] = _accounts(ctx, counts, previous, integrations, weekly)
        return _complete(partial_report, part)
    finally:
        source.close()
        if child is not None:
            child.abandon()


class _StaleSnapshotError(Exception):
    """A writer committed between the parent's snapshot and the child's."""


class _ChildPart(msgspec.Struct, array_like=True):
    """What the forked child computes, and the mark of the snapshot it read.

    ``previous`` (every user active in the previous window) and ``integrations`` (the
    window's ``integration_uses``) only when the parent handed them over (a short
    window, ``_CHILD_READS_MAX_DAYS``); both are unfiltered reads.
    """

    mark: int
    sessions: SessionStats
    previous: set[str] | None = None
    integrations: set[tuple[str, str, str]] | None = None


def _forked_part(
    store: ReportStore, mark: int, window: Window, ctx: ReportContext | None, *, offload: bool
) -> _ChildPart:
    """The forked child's work: the session figures, about half of a large report.

    Without ``ctx`` (an unfiltered report forked before loading it) the child finds the
    known users itself. ``offload``: also read the previous window's users and the
    integrations (see ``_ChildPart``). Its snapshot is never closed: the child just exits.
    """
    source = store.report_source()
    if source.events_stored() != mark:
        raise _StaleSnapshotError  # the parent computes the part itself
    if ctx is None:
        part = _ChildPart(mark, session_stats(source, window, source.known_user_ids(window.end)))
    else:
        ctx = rebind(ctx, source)
        part = _ChildPart(mark, session_stats(source, window, ctx.known))
    if offload:
        part.previous = source.users_active_between(window.previous_start, window.start)
        # A short window: its own days of the rollup, not a whole covering index.
        part.integrations = source.integration_uses(window, most_history=False)
    return part


def _assemble(
    ctx: ReportContext, counts: _Counts, core: Sequence[str] | None, *, accounts: bool
) -> tuple[dict[str, Any], WeeklyActivity]:
    """The report without the child's part (the session figures; see ``_complete``).

    ``accounts``: build the ``accounts`` rows too (else they are left empty, for
    ``_accounts`` to fill once the child's reads are in). Also returns the weekly
    activity the rows need.
    """
    window = ctx.window
    usage = counts.usage
    activity = counts.activity
    product = _product(ctx, counts)
    weekly = weekly_activity(ctx, activity)
    rows = (
        _accounts(ctx, counts, counts.previous, integration_uses(ctx), weekly) if accounts else []
    )
    report = {
        "window": {"since": window.since.isoformat(), "until": window.until.isoformat()},
        "product": product,
        "features": _features(ctx, usage, product["active_users"]),
        "accounts": rows,
        "users": _users(ctx, activity, usage),
        "retention": counts.retention,
        "releases": _releases(ctx),
        "lifecycle": lifecycle_rows(ctx, weekly),
        "power_users": power_users(ctx, activity),
        "activation": activation(ctx, core),
    }
    return report, weekly


def _accounts(
    ctx: ReportContext,
    counts: _Counts,
    previous: set[str],
    integrations: set[tuple[str, str, str]],
    weekly: WeeklyActivity,
) -> list[dict[str, Any]]:
    """The ``accounts`` rows, each with its weekly active users."""
    rows = account_rows(ctx, counts.activity, previous, counts.usage, integrations)
    add_weekly_active(ctx, rows, weekly)
    return rows


def _features(ctx: ReportContext, usage: FeatureUsage, active_users: int) -> list[dict[str, Any]]:
    """The ``features`` rows with their frequency and quadrant (medians over every feature)."""
    rows = feature_rows(ctx, usage, active_users, every=True)
    add_feature_frequency(ctx, rows, active_users)
    wanted = ctx.filters.feature
    return rows if wanted is None else [row for row in rows if row["name"] == wanted]


def _complete(report: dict[str, Any], part: _ChildPart) -> dict[str, Any]:
    """Add the child's part (the session figures) to what ``_assemble`` built."""
    sessions = part.sessions
    report["product"].update(
        sessions=sessions.count,
        avg_session_s=sessions.mean_s(),
        median_session_s=sessions.median_s(),
    )
    _add_sessions(report["users"], sessions)
    return report


class _Counts:
    """The figures the store aggregates by itself (few rows out), gathered by ``run``.

    ``previous``: read the previous window's users too (not when the child reads them).
    """

    def __init__(self, ctx: ReportContext, *, previous: bool = True) -> None:
        self._ctx = ctx
        self._previous = previous
        self.activity: dict[str, UserActivity] = {}
        self.previous: set[str] = set()
        self.dau: list[int] = []
        self.wau = self.mau = 0
        self.usage = FeatureUsage()
        self.retention: list[dict[str, Any]] = []

    def run(self) -> None:
        """Read the aggregates."""
        ctx = self._ctx
        self.activity = user_activity(ctx)
        if self._previous:
            self.previous = previous_active(ctx)
        self.dau = dau_series(ctx)
        self.wau = trailing_active(ctx, 7, self.activity)
        self.mau = trailing_active(ctx, 30, self.activity)
        self.usage = feature_usage(ctx)
        self.retention = retention_rows(ctx, self.activity)
