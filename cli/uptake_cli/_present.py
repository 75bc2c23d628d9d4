"""How a usage report is presented, shared by the table, CSV and HTML renderers.

Number formats (percent, durations, nulls) and the derived views that more than one
renderer shows: users needing attention and frequency-segment counts. Everything reads
the plain report dict; nothing here computes a metric the engine already computed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Final

__all__ = [
    "BANDS",
    "MISSING",
    "SEGMENTS",
    "Report",
    "attention_users",
    "describe_scope",
    "fmt_count",
    "fmt_duration",
    "fmt_mean",
    "fmt_pct",
    "fmt_ratio",
    "segment_counts",
]

#: A usage report as decoded JSON (its fields: docs/metrics.md, ``metrics.report_schema``).
Report = dict[str, Any]

#: What a null metric shows as (unknown seats, no previous window, no sessions).
MISSING: Final = "—"
#: Frequency segments, most engaged first.
SEGMENTS: Final = ("daily", "frequent", "occasional", "inactive")
#: Health bands, best first.
BANDS: Final = ("green", "yellow", "red")

# Why a user is listed as needing attention, in the order they are shown.
_INACTIVE = "inactive seat"
_CHURN = "churn-risk account"
_FADING = "rarely active"


def describe_scope(account: str | None, user: str | None, feature: str | None) -> str:
    """Name the filters that narrow a report, for titles; empty when there are none.

    >>> describe_scope("acme", None, "export_csv")
    'account acme, feature export_csv'
    """
    named = (("account", account), ("user", user), ("feature", feature))
    return ", ".join(f"{kind} {value}" for kind, value in named if value is not None)


def fmt_pct(share: float | None, digits: int = 0) -> str:
    """Format a fraction as a percentage; ``None`` shows as a dash.

    >>> fmt_pct(0.4286), fmt_pct(1.25), fmt_pct(None)
    ('43%', '125%', '—')
    """
    if share is None:
        return MISSING
    return f"{share * 100:.{digits}f}%"


def fmt_ratio(value: float | None) -> str:
    """Format a ratio such as growth (1.5 -> ``×1.50``); ``None`` shows as a dash."""
    return MISSING if value is None else f"×{value:.2f}"


def fmt_count(value: int | None) -> str:
    """Format a count with thousands separators; ``None`` shows as a dash.

    >>> fmt_count(12345), fmt_count(None)
    ('12,345', '—')
    """
    return MISSING if value is None else f"{value:,}"


def fmt_mean(value: float) -> str:
    """Format an average count: one decimal while small, whole numbers once large.

    >>> fmt_mean(8.44), fmt_mean(3104.3)
    ('8.4', '3,104')
    """
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def fmt_duration(seconds: float | None) -> str:
    """Format a duration in seconds for people.

    >>> fmt_duration(42.4), fmt_duration(1875.9), fmt_duration(7300), fmt_duration(None)
    ('42s', '31m 16s', '2h 01m', '—')
    """
    if seconds is None:
        return MISSING
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def segment_counts(report: Report) -> dict[str, int]:
    """Count users per frequency segment, every segment present (zeros included)."""
    counts = Counter(user["segment"] for user in report["users"])
    return {segment: counts.get(segment, 0) for segment in SEGMENTS}


def attention_users(report: Report) -> list[tuple[dict[str, Any], str]]:
    """Users an account manager should look at, each with the reason, most urgent first.

    A user needs attention when their seat sat unused in the window (segment
    ``inactive``), when their account is flagged ``churn_risk`` and they are not a daily
    or frequent user, or when they were active on only a day or two. Ties are broken by
    ``last_seen``, oldest first, then by user id.
    """
    churning = {
        account["account"] for account in report["accounts"] if "churn_risk" in account["flags"]
    }
    listed: list[tuple[int, str, str, dict[str, Any], str]] = []
    for user in report["users"]:
        if user["segment"] == "inactive":
            rank, reason = 0, _INACTIVE
        elif user.get("account") in churning and user["segment"] == "occasional":
            rank, reason = 1, _CHURN
        elif user["segment"] == "occasional" and user["active_days"] <= 2:
            rank, reason = 2, _FADING
        else:
            continue
        listed.append((rank, user.get("last_seen") or "", user["user"], user, reason))
    listed.sort(key=lambda entry: entry[:3])
    return [(user, reason) for _, _, _, user, reason in listed]
