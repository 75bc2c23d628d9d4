"""A deterministic simulation of a small SaaS product, for `usage demo` and tests.

``Scenario(days=90, seed=7)`` describes twelve customer accounts with licensed seats and
about 190 users over the ``days`` UTC days before ``until`` (today by default). Users log
in, hold sessions and use thirteen features whose adoption ramps up at different speeds,
mostly on weekdays. The story the numbers should tell:

- ``globex`` is churning: its users drop away over the last weeks (``churn_risk``);
- ``initech`` uses nearly every seat it pays for (utilization >= 0.9, ``upsell``);
- ``umbrella`` adopts the Slack integration part-way through (``integration="slack"``);
- release ``2.0`` ships inside the report window; afterwards ``pdf_export`` is used far
  less (it moved behind a menu) and the new ``ai_summary`` takes off;
- ``aperture`` signs up half-way through, so later retention cohorts fill in;
- ``acme`` and ``stark`` buy more seats along the way;
- later hires join every account throughout, so the window has new users whose time to
  first use of a core feature (``CORE_FEATURES``) spreads over days.

Everything comes from seeded ``random.Random`` instances, one per user (and one for the
account-level events), so the output depends only on (``seed``, ``days``, ``until``) and a
shard's events do not depend on how many shards there are. Event ids are derived from the
same generators, so a re-run sends the same ids and the daemon stores nothing twice.

Example::

    scenario = Scenario(days=30, seed=1)
    for event in scenario.events(shard=0, shards=4):
        uptake.record(event)
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Final

from uptake.protocol import Event, EventKind, PropValue, content_event_id

__all__ = [
    "CHURNING_ACCOUNT",
    "CORE_FEATURES",
    "DEFAULT_DAYS",
    "DEFAULT_SEED",
    "DROPPING_FEATURE",
    "INTEGRATION_ACCOUNT",
    "MIN_DAYS",
    "RELEASE_VERSION",
    "UPSELL_ACCOUNT",
    "AccountPlan",
    "FeaturePlan",
    "Scenario",
    "UserPlan",
    "today_utc",
]

DEFAULT_DAYS: Final = 90
DEFAULT_SEED: Final = 7
#: Fewer days leave no room for a previous window and the release story.
MIN_DAYS: Final = 14
#: The report window is the last ``min(30, days // 2)`` days, so a previous window exists.
_MAX_WINDOW: Final = 30

CHURNING_ACCOUNT: Final = "globex"
UPSELL_ACCOUNT: Final = "initech"
INTEGRATION_ACCOUNT: Final = "umbrella"
RELEASE_VERSION: Final = "2.0"
#: The feature whose use drops after the release.
DROPPING_FEATURE: Final = "pdf_export"
#: The product's core features: a new user who used one has seen its value (activation).
CORE_FEATURES: Final = ("create_report", "share_link")

_DAY_US: Final = 86_400_000_000
_HOUR_US: Final = 3_600_000_000
_MINUTE_US: Final = 60_000_000
_EPOCH: Final = date(1970, 1, 1)
#: Share of the weekday activity probability left on Saturdays and Sundays, per tier:
#: power users check in at weekends too, so some of them are "daily" users.
_WEEKEND_FACTOR: Final = (0.65, 0.12, 0.08)
#: Share of sessions whose events carry no session id (API / mobile clients).
_IMPLICIT_SHARE: Final = 0.15


def today_utc() -> date:
    """Return today's date in UTC (the default ``until`` of a scenario)."""
    return datetime.now(timezone.utc).date()


@dataclass(frozen=True)
class AccountPlan:
    """One customer: seat history ``[(day index, seats), ...]``, users, plan, habits.

    ``joins_at`` is the share of the simulation after which the account signs up;
    ``peak_hour`` the UTC hour around which its people work.
    """

    account: str
    plan: str
    users: int
    seats: tuple[tuple[float, int], ...]
    peak_hour: int
    joins_at: float = 0.0
    tiers: tuple[float, float, float] = (0.25, 0.5, 0.25)  # power, regular, casual
    integration: str | None = None
    integration_from: float = 0.0


@dataclass(frozen=True)
class FeaturePlan:
    """A feature: who adopts it (``reach`` per tier), when and how fast, how often used.

    ``launch`` and ``ramp_days`` shape the adoption curve: a user who adopts starts using
    the feature an exponentially distributed number of days (mean ``ramp_days``) after
    the later of the launch and their own first day. ``launch`` is a share of the
    simulation, or ``None`` for "ships with the release".
    """

    name: str
    weight: float
    reach: tuple[float, float, float]
    launch: float | None = 0.0
    ramp_days: float = 1.0
    integration: str | None = None


#: Accounts, largest first. Seat shares are fractions of the simulated days.
_ACCOUNTS: Final = (
    AccountPlan("tyrell", "enterprise", 30, ((0.0, 60),), 14, tiers=(0.1, 0.4, 0.5)),
    AccountPlan(
        "acme",
        "business",
        28,
        ((0.0, 30), (0.35, 40)),
        9,
        integration="github",
    ),
    AccountPlan("globex", "business", 24, ((0.0, 30),), 15, tiers=(0.3, 0.5, 0.2)),
    AccountPlan(
        "umbrella",
        "business",
        22,
        ((0.0, 35),),
        10,
        integration="slack",
        integration_from=0.4,
    ),
    AccountPlan("initech", "team", 20, ((0.0, 20),), 13, tiers=(0.6, 0.4, 0.0)),
    AccountPlan("hooli", "team", 16, ((0.0, 20),), 16),
    AccountPlan("aperture", "team", 12, ((0.5, 18),), 11, joins_at=0.5),
    AccountPlan("stark", "team", 10, ((0.0, 10), (0.55, 15)), 12, tiers=(0.3, 0.5, 0.2)),
    AccountPlan("wayne", "team", 8, ((0.0, 10),), 17, tiers=(0.5, 0.5, 0.0)),
    AccountPlan("wonka", "starter", 7, ((0.0, 10),), 8),
    AccountPlan("cyberdyne", "starter", 5, ((0.0, 6),), 15, tiers=(0.4, 0.6, 0.0)),
    AccountPlan("soylent", "starter", 4, ((0.0, 5),), 10, tiers=(0.0, 0.5, 0.5)),
)

_FEATURES: Final = (
    FeaturePlan("view_dashboard", 10.0, (1.0, 0.98, 0.9)),
    FeaturePlan("search", 6.0, (0.95, 0.85, 0.6)),
    FeaturePlan("create_report", 4.0, (0.9, 0.65, 0.3), ramp_days=5),
    FeaturePlan("export_csv", 2.5, (0.7, 0.45, 0.2), ramp_days=10),
    FeaturePlan("share_link", 2.0, (0.6, 0.4, 0.15), ramp_days=12),
    FeaturePlan("comments", 2.0, (0.55, 0.3, 0.1), launch=0.1, ramp_days=20),
    FeaturePlan(DROPPING_FEATURE, 2.5, (0.5, 0.3, 0.15), ramp_days=8),
    FeaturePlan("alerts", 1.5, (0.5, 0.25, 0.05), launch=0.3, ramp_days=10),
    FeaturePlan("ai_summary", 3.0, (0.8, 0.6, 0.3), launch=None, ramp_days=4),
    FeaturePlan("bulk_edit", 1.0, (0.35, 0.15, 0.02), ramp_days=15),
    FeaturePlan("api_tokens", 0.4, (0.2, 0.05, 0.0), ramp_days=25),
    FeaturePlan("sync_issues", 1.5, (0.6, 0.4, 0.1), ramp_days=6, integration="github"),
    FeaturePlan("notify_channel", 2.0, (0.9, 0.7, 0.4), ramp_days=5, integration="slack"),
)

# Probability of being active on a weekday, per tier (power, regular, casual).
_ACTIVE_P: Final = (0.95, 0.6, 0.22)
# Mean feature events per session, per tier.
_EVENTS_PER_SESSION: Final = (15.0, 10.0, 5.0)
_TIER_NAMES: Final = ("power", "regular", "casual")


@dataclass(frozen=True)
class UserPlan:
    """One simulated person: account, engagement tier, first and last active day."""

    user: str
    account: str
    tier: int
    start_day: int
    end_day: int  # exclusive: no activity from this day on
    index: int


@dataclass
class _UserState:
    plan: UserPlan
    rng: random.Random
    adoption: dict[str, int]  # feature -> first day the user may use it
    session_count: int = 0
    identified: bool = False


@dataclass(frozen=True)
class Scenario:
    """The simulated product over the ``days`` UTC days before ``until`` (exclusive).

    >>> scenario = Scenario(days=30, until=date(2026, 1, 31))
    >>> scenario.since, scenario.window()
    (datetime.date(2026, 1, 1), (datetime.date(2026, 1, 16), datetime.date(2026, 1, 31)))
    """

    days: int = DEFAULT_DAYS
    seed: int = DEFAULT_SEED
    until: date = field(default_factory=today_utc)

    def __post_init__(self) -> None:
        if self.days < MIN_DAYS:
            raise ValueError(f"a scenario needs at least {MIN_DAYS} days, got {self.days}")

    # -- the calendar -------------------------------------------------------------------

    @property
    def since(self) -> date:
        """The first simulated day."""
        return self.until - timedelta(days=self.days)

    @property
    def window_days(self) -> int:
        """Length of the report window: the last 30 days, or half the scenario if shorter."""
        return min(_MAX_WINDOW, self.days // 2)

    def window(self) -> tuple[date, date]:
        """The report window ``[since, until)``: the last ``window_days`` simulated days.

        The days before it form the previous window, so churn and growth have a baseline.
        """
        return self.until - timedelta(days=self.window_days), self.until

    @property
    def release_day(self) -> int:
        """Day index (0 = ``since``) of release 2.0: inside the report window, past its middle."""
        return self.days - max(1, round(self.window_days * 0.6))

    def day_of(self, ts_us: int) -> int:
        """Day index (0 = ``since``) of a timestamp."""
        return ts_us // _DAY_US - (self.since - _EPOCH).days

    def _day_start_us(self, day: int) -> int:
        return ((self.since - _EPOCH).days + day) * _DAY_US

    def _share_day(self, share: float) -> int:
        return min(self.days - 1, round(share * self.days))

    def story(self) -> list[str]:
        """What the simulated numbers should show, one line each (printed by the demo)."""
        release = self.since + timedelta(days=self.release_day)
        return [
            f"{CHURNING_ACCOUNT} is churning: its users drift away in the last weeks (churn_risk)",
            f"{UPSELL_ACCOUNT} uses every seat it pays for (upsell)",
            f"{INTEGRATION_ACCOUNT} adopted the Slack integration part-way (Integr. column)",
            f"release {RELEASE_VERSION} on {release}: {DROPPING_FEATURE} use drops, "
            "ai_summary takes off (Release impact)",
            f"{CHURNING_ACCOUNT}'s leavers show as dormant users in the lifecycle, and its "
            "weekly active users fall week by week",
            "new hires join throughout: activation shows how fast they reach "
            f"{' or '.join(CORE_FEATURES)} (the core features)",
        ]

    # -- who is in it -------------------------------------------------------------------

    def accounts(self) -> tuple[AccountPlan, ...]:
        """The simulated accounts."""
        return _ACCOUNTS

    def features(self) -> tuple[FeaturePlan, ...]:
        """The simulated features."""
        return _FEATURES

    def users(self) -> list[UserPlan]:
        """Every simulated user, in a fixed order (the order shards are dealt from)."""
        users: list[UserPlan] = []
        for account in _ACCOUNTS:
            rng = random.Random(f"{self.seed}:account:{account.account}")
            joined = self._share_day(account.joins_at)
            for n in range(account.users):
                tier = _pick_tier(rng, account.tiers)
                start = joined
                if account.joins_at > 0:
                    # A new customer onboards its people over a few weeks.
                    start = joined + int(rng.expovariate(1 / max(1.0, self.days * 0.08)))
                elif rng.random() < 0.15:
                    start = rng.randrange(self.days // 6, self.days)  # a later hire
                end = self.days
                if account.account == CHURNING_ACCOUNT:
                    # Half leave before the report window starts, the rest during it.
                    end = self.days - round(self.window_days * rng.uniform(0.25, 1.75))
                elif account.account != UPSELL_ACCOUNT and rng.random() < 0.04:
                    end = rng.randrange(self.days // 3, self.days)  # moved on
                start = min(start, self.days - 1)
                users.append(
                    UserPlan(
                        user=f"{account.account}-{n + 1:02d}",
                        account=account.account,
                        tier=tier,
                        start_day=start,
                        end_day=max(end, start + 1),
                        index=len(users),
                    )
                )
        return users

    def shard_of(self, user: UserPlan, shards: int) -> int:
        """Which of ``shards`` host processes sends this user's events."""
        return user.index % shards

    # -- the events ---------------------------------------------------------------------

    def events(self, shard: int = 0, shards: int = 1) -> Iterator[Event]:
        """Yield shard ``shard`` of ``shards`` of the scenario's events, in time order.

        Each user's events go to exactly one shard (``shard_of``); account-level events
        (seats, the release) go to shard 0. The shards of any ``shards`` partition the
        same set of events.
        """
        if not 0 <= shard < shards:
            raise ValueError(f"shard must be in [0, {shards}), got {shard}")
        states = [
            self._user_state(user) for user in self.users() if self.shard_of(user, shards) == shard
        ]
        account_events = self._account_events() if shard == 0 else []
        by_day: dict[int, list[Event]] = {}
        for event in account_events:
            by_day.setdefault(self.day_of(event.ts), []).append(event)
        for day in range(self.days):
            todays = by_day.pop(day, [])
            for state in states:
                todays.extend(self._user_day(state, day))
            todays.sort(key=lambda event: (event.ts, event.id))
            yield from todays

    def _account_events(self) -> list[Event]:
        rng = random.Random(f"{self.seed}:accounts")
        events: list[Event] = []
        for account in _ACCOUNTS:
            for share, seats in account.seats:
                day = self._share_day(share)
                ts = self._day_start_us(day) + rng.randrange(_HOUR_US)
                events.append(
                    _event(
                        rng,
                        ts,
                        "seats",
                        account=account.account,
                        value=seats,
                        props={"plan": account.plan},
                        source="billing",
                    )
                )
        ts = self._day_start_us(self.release_day) + 7 * _HOUR_US
        events.append(_event(rng, ts, "release", name=RELEASE_VERSION, source="deploy"))
        return events

    def _user_state(self, user: UserPlan) -> _UserState:
        rng = random.Random(f"{self.seed}:user:{user.user}")
        account = _ACCOUNT_BY_NAME[user.account]
        adoption: dict[str, int] = {}
        for feature in _FEATURES:
            if feature.integration is not None and feature.integration != account.integration:
                continue
            if rng.random() >= feature.reach[user.tier]:
                continue
            launch = self.release_day if feature.launch is None else self._share_day(feature.launch)
            if feature.integration is not None:
                launch = max(launch, self._share_day(account.integration_from))
            delay = rng.expovariate(1 / feature.ramp_days)
            adoption[feature.name] = max(launch, user.start_day) + int(delay)
        return _UserState(plan=user, rng=rng, adoption=adoption)

    def _activity(self, user: UserPlan, day: int) -> float:
        """Probability that ``user`` is active on ``day``."""
        if not user.start_day <= day < user.end_day:
            return 0.0
        p = _ACTIVE_P[user.tier]
        if user.account == CHURNING_ACCOUNT:
            # Engagement fades over the user's last weeks before they leave.
            remaining = user.end_day - day
            p *= min(1.0, 0.35 + remaining / max(1.0, self.window_days))
        weekday = (self.since + timedelta(days=day)).weekday()
        return p * (_WEEKEND_FACTOR[user.tier] if weekday >= 5 else 1.0)

    def _user_day(self, state: _UserState, day: int) -> list[Event]:
        rng = state.rng
        user = state.plan
        if rng.random() >= self._activity(user, day):
            return []
        account = _ACCOUNT_BY_NAME[user.account]
        day_start = self._day_start_us(day)
        sessions = 1 + (rng.random() < 0.5) + (user.tier < 2 and rng.random() < 0.4)
        events: list[Event] = []
        # Sessions start around the account's working hours, spread through the day.
        clock = day_start + (account.peak_hour - 4) * _HOUR_US + rng.randrange(3 * _HOUR_US)
        for n in range(sessions):
            if clock >= day_start + 21 * _HOUR_US:
                break
            if not state.identified:
                state.identified = True
                events.append(
                    _event(
                        rng,
                        clock - _MINUTE_US,
                        "identify",
                        user=user.user,
                        account=user.account,
                        props={"plan": account.plan, "role": _TIER_NAMES[user.tier]},
                        source="web",
                    )
                )
            end = self._session(state, account, day, clock, first=n == 0, out=events)
            clock = end + rng.randrange(30 * _MINUTE_US, 4 * _HOUR_US)
        return events

    def _session(
        self,
        state: _UserState,
        account: AccountPlan,
        day: int,
        start: int,
        *,
        first: bool,
        out: list[Event],
    ) -> int:
        """Append one session's events to ``out``; return the session's end time."""
        rng = state.rng
        user = state.plan
        implicit = rng.random() < _IMPLICIT_SHARE
        source = "api" if implicit else "web"
        if rng.random() < (0.9 if first else 0.3):
            method = "sso" if account.plan == "enterprise" else "password"
            out.append(
                _event(
                    rng,
                    start,
                    "login",
                    props={"method": method},
                    source=source,
                    user=user.user,
                    account=user.account,
                )
            )
        # Session length: log-normal around 12 minutes, at most two hours.
        duration = min(2 * _HOUR_US, int(rng.lognormvariate(math.log(12), 0.8) * _MINUTE_US))
        duration = max(duration, _MINUTE_US)
        session: str | None = None
        if not implicit:
            state.session_count += 1
            session = f"{user.user}-s{state.session_count:04d}"
            out.append(
                _event(
                    rng,
                    start,
                    "session_start",
                    session=session,
                    source=source,
                    user=user.user,
                    account=user.account,
                )
            )
        usable = [
            feature for feature in _FEATURES if state.adoption.get(feature.name, self.days) <= day
        ]
        if usable:
            weights = [self._weight(feature, day) for feature in usable]
            count = 1 + int(rng.expovariate(1 / _EVENTS_PER_SESSION[user.tier]))
            offsets = sorted(rng.randrange(1, duration) for _ in range(count))
            for offset, feature in zip(offsets, rng.choices(usable, weights, k=count), strict=True):
                out.append(
                    _event(
                        rng,
                        start + offset,
                        "feature",
                        name=feature.name,
                        session=session,
                        props=_feature_props(rng, feature),
                        source=source,
                        user=user.user,
                        account=user.account,
                    )
                )
        end = start + duration
        if session is not None:
            out.append(
                _event(
                    rng,
                    end,
                    "session_end",
                    session=session,
                    value=duration // 1000,
                    source=source,
                    user=user.user,
                    account=user.account,
                )
            )
            if rng.random() < 0.25:
                out.append(
                    _event(
                        rng, end + 1, "logout", source=source, user=user.user, account=user.account
                    )
                )
        return end

    def _weight(self, feature: FeaturePlan, day: int) -> float:
        if feature.name == DROPPING_FEATURE and day >= self.release_day:
            return feature.weight * 0.15  # 2.0 moved it behind a menu
        return feature.weight


_ACCOUNT_BY_NAME: Final = {account.account: account for account in _ACCOUNTS}


def _pick_tier(rng: random.Random, tiers: tuple[float, float, float]) -> int:
    roll = rng.random()
    for tier, share in enumerate(tiers):
        if roll < share:
            return tier
        roll -= share
    return len(tiers) - 1


def _feature_props(rng: random.Random, feature: FeaturePlan) -> dict[str, PropValue] | None:
    if feature.integration is not None:
        return {"integration": feature.integration}
    if feature.name == "export_csv":
        return {"format": "xlsx" if rng.random() < 0.3 else "csv"}
    if feature.name == "ai_summary":
        return {"words": rng.randrange(50, 400)}
    return None


def _event(
    rng: random.Random,
    ts: int,
    kind: EventKind,
    *,
    name: str | None = None,
    user: str | None = None,
    account: str | None = None,
    session: str | None = None,
    value: int | None = None,
    props: dict[str, PropValue] | None = None,
    source: str | None = None,
) -> Event:
    # Ids come from the seeded generator, so the same scenario always has the same ids.
    return Event(
        id=content_event_id(ts, rng.randbytes(8)),
        ts=ts,
        kind=kind,
        name=name,
        user=user,
        account=account,
        session=session,
        value=value,
        props=props,
        source=source,
    )
