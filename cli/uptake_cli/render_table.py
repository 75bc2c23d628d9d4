"""Terminal rendering of a usage report as rich tables (the default `usage report` output).

Four blocks: the product summary, top features with adoption, accounts (seats,
utilization, health band in colour, flags) and users needing attention. Colours are
dropped automatically when the output is not a terminal.
"""

from __future__ import annotations

from typing import Any, Final

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from uptake_cli._present import (
    MISSING,
    Report,
    attention_users,
    fmt_count,
    fmt_duration,
    fmt_mean,
    fmt_pct,
    fmt_ratio,
    segment_counts,
)
from uptake_cli.render_engagement import engagement_tables

__all__ = ["print_report", "report_tables"]

_BAND_STYLE: Final = {"green": "bold green", "yellow": "bold yellow", "red": "bold red"}
_FLAG_STYLE: Final = {"churn_risk": "red", "upsell": "cyan", "idle_seats": "yellow"}
_TOP_FEATURES: Final = 10
_ATTENTION_ROWS: Final = 15
_ACCOUNT_ROWS: Final = 25


def _summary(report: Report, scope: str) -> Table:
    product = report["product"]
    dau = product["dau"]
    latest = dau[-1]["users"] if dau else 0
    mean_dau = sum(day["users"] for day in dau) / len(dau) if dau else 0.0
    window = report["window"]
    table = Table(
        title=(
            f"Product usage  {window['since']} → {window['until']} (UTC, end exclusive)"
            + (f"  only {scope}" if scope else "")
        ),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_header=False,
    )
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    segments = segment_counts(report)
    rows = [
        ("DAU (last day)", fmt_count(latest), "Mean DAU", fmt_mean(mean_dau)),
        ("WAU", fmt_count(product["wau"]), "MAU", fmt_count(product["mau"])),
        (
            "Stickiness (DAU/active)",
            fmt_pct(product["stickiness"], 1),
            "Usage rate",
            fmt_pct(product["usage_rate"], 1),
        ),
        (
            "Active users",
            fmt_count(product["active_users"]),
            "Known users",
            fmt_count(product["known_users"]),
        ),
        ("Logins", fmt_count(product["logins"]), "Sessions", fmt_count(product["sessions"])),
        (
            "Avg session",
            fmt_duration(product["avg_session_s"]),
            "Median session",
            fmt_duration(product["median_session_s"]),
        ),
    ]
    for row in rows:
        table.add_row(*row)
    caption = "Users by segment: " + ", ".join(f"{n} {name}" for name, n in segments.items())
    releases = report.get("releases") or []
    if releases:
        listed = ", ".join(f"{release['version']} ({release['day']})" for release in releases)
        caption += f"\nReleases: {listed}"
    table.caption = caption
    table.caption_justify = "left"
    return table


def _features(report: Report) -> Table:
    features = sorted(report["features"], key=lambda row: (-(row["adoption"] or 0.0), row["name"]))
    shown = features[:_TOP_FEATURES]
    title = "Top features by adoption"
    if len(features) > len(shown):
        title += f" (top {len(shown)} of {len(features)})"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("Feature", overflow="fold")
    table.add_column("Adoption", justify="right")
    table.add_column("", no_wrap=True)
    table.add_column("Users", justify="right")
    table.add_column("Accounts", justify="right")
    table.add_column("Events", justify="right")
    for feature in shown:
        bar = "█" * round(min(feature["adoption"] or 0.0, 1.0) * 20)
        table.add_row(
            Text(feature["name"]),
            fmt_pct(feature["adoption"]),
            Text(bar, style="blue"),
            fmt_count(feature["users"]),
            fmt_count(feature["accounts"]),
            fmt_count(feature["events"]),
        )
    if not shown:
        table.caption, table.caption_justify = "No feature events in this window.", "left"
    return table


def _flags(flags: list[str]) -> Text:
    text = Text()
    for index, flag in enumerate(flags):
        if index:
            text.append(" ")
        text.append(flag, style=_FLAG_STYLE.get(flag, ""))
    return text


def _accounts(report: Report) -> Table:
    accounts = sorted(report["accounts"], key=lambda row: (row["health"], row["account"]))
    title = "Accounts (least healthy first)"
    if len(accounts) > _ACCOUNT_ROWS:
        title += f" ({_ACCOUNT_ROWS} of {len(accounts)}; all: --format csv --table accounts)"
        accounts = accounts[:_ACCOUNT_ROWS]
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
        caption=(
            "Util. = active users / seats; Adopt. = mean daily logins / seats; "
            "Growth = active users vs the previous window; Feat. = distinct features used"
        ),
        caption_justify="left",
    )
    table.add_column("Account", overflow="fold", min_width=10)
    table.add_column("Seats", justify="right")
    table.add_column("Active", justify="right")
    table.add_column("Util.", justify="right")
    table.add_column("Adopt.", justify="right")
    table.add_column("Growth", justify="right")
    table.add_column("Feat.", justify="right")
    table.add_column("Health", justify="right", no_wrap=True)
    table.add_column("Flags", min_width=10)
    for account in accounts:
        band = account["band"]
        table.add_row(
            Text(account["account"]),
            fmt_count(account["seats"]),
            fmt_count(account["active_users"]),
            fmt_pct(account["utilization"]),
            fmt_pct(account["adoption_rate"]),
            fmt_ratio(account["growth"]),
            fmt_count(account["breadth"]),
            Text(f"{account['health']} {band}", style=_BAND_STYLE.get(band, "")),
            _flags(account["flags"]) if account["flags"] else Text(MISSING, style="dim"),
        )
    if not accounts:
        table.caption = "No accounts in this window."
    return table


def _attention(report: Report) -> Table:
    listed = attention_users(report)
    shown = listed[:_ATTENTION_ROWS]
    title = "Users needing attention"
    if len(listed) > len(shown):
        title += f" (first {len(shown)} of {len(listed)}; all: --format csv --table users)"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("User", overflow="fold")
    table.add_column("Account", overflow="fold")
    table.add_column("Why", no_wrap=True)
    table.add_column("Segment")
    table.add_column("Active days", justify="right")
    table.add_column("Last seen", no_wrap=True)
    for user, reason in shown:
        table.add_row(
            Text(user["user"]),
            Text(user.get("account") or MISSING),
            Text(reason, style="red" if reason != "rarely active" else "yellow"),
            user["segment"],
            fmt_count(user["active_days"]),
            _day(user.get("last_seen")),
        )
    if not shown:
        table.caption = "Nobody: every known user was active in this window."
        table.caption_justify = "left"
    return table


def _day(stamp: str | None) -> str:
    # "2026-10-30T10:42:00.123456Z" -> "2026-10-30": the day is what matters on screen.
    return stamp[:10] if stamp else MISSING


def report_tables(report: Report, *, scope: str = "") -> RenderableType:
    """Return the tables of a usage report as one rich renderable.

    The four usage tables, then the engagement ones (``render_engagement``).

    ``scope`` names the filters that narrowed the report (e.g. ``account acme``).
    """
    blocks: list[Any] = [_summary(report, scope), _features(report), _accounts(report)]
    blocks.append(_attention(report))
    blocks += engagement_tables(report)
    return Group(*blocks)


def print_report(report: Report, console: Console | None = None) -> None:
    """Print the report tables to ``console`` (stdout by default).

    Example::

        print_report(build_report(db_path, ReportFilters()))
    """
    (console or Console()).print(report_tables(report))
