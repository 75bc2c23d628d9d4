"""The HTML report: one self-contained file with inline CSS and SVG charts.

No scripts, fonts or images are fetched: the file opens offline, can be mailed, and prints
(``@media print`` drops colours that waste ink and keeps charts and tables unbroken).
Every string that came from the report (names, ids, versions) is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, Final

from uptake_cli import svg
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
from uptake_cli.render_engagement import (
    account_trend,
    engagement_css,
    engagement_sections,
    release_label,
)
from uptake_cli.render_goals import goals_html
from uptake_cli.svg import esc

__all__ = ["BAND_COLOURS", "render_html"]

#: Health band colours, shared by the utilization chart and the accounts table.
BAND_COLOURS: Final = {"green": "#15803d", "yellow": "#ca8a04", "red": "#b91c1c"}
_SEGMENT_COLOURS: Final = {
    "daily": "#1e40af",
    "frequent": "#3b82f6",
    "occasional": "#93c5fd",
    "inactive": "#9ca3af",
}
_MAX_FEATURE_BARS: Final = 20
_MAX_ACCOUNT_BARS: Final = 30
_MAX_TABLE_ROWS: Final = 100

_CSS: Final = """
:root { --ink: #111827; --muted: #6b7280; --line: #e5e7eb; --panel: #f9fafb; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
main { max-width: 1000px; margin: 0 auto; padding: 24px 24px 48px; }
header h1 { margin: 0 0 4px; font-size: 26px; }
header p { margin: 0; color: var(--muted); }
h2 { font-size: 18px; margin: 0 0 4px; }
section { margin-top: 28px; }
section > p.note { margin: 0 0 10px; color: var(--muted); font-size: 13px; }
.kpis { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr));
  gap: 10px; margin-top: 20px; }
.kpi { background: var(--panel); border: 1px solid var(--line); border-radius: 8px;
  padding: 10px 12px; }
.kpi .value { font-size: 24px; font-weight: 650; font-variant-numeric: tabular-nums; }
.kpi .label { color: var(--muted); font-size: 13px; }
svg.chart { display: block; width: 100%; height: auto; max-width: 100%; }
svg.chart text { font-family: inherit; }
table { width: 100%; border-collapse: collapse; font-size: 14px;
  font-variant-numeric: tabular-nums; }
th, td { padding: 5px 8px; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 13px; }
td.num, th.num { text-align: right; }
tbody tr:nth-child(even) { background: var(--panel); }
td.name { overflow-wrap: break-word; max-width: 18em; }
td.nowrap { white-space: nowrap; }
.table-wrap { overflow-x: auto; }
.band { display: inline-block; min-width: 64px; white-space: nowrap; padding: 1px 8px;
  border-radius: 10px; color: #fff; font-weight: 600; font-size: 13px; text-align: center; }
.flag { display: inline-block; white-space: nowrap; margin: 0 4px 2px 0; padding: 0 6px;
  border-radius: 4px; border: 1px solid currentColor; font-size: 12px; }
.flags { margin-top: 3px; }
.flag.churn_risk { color: #b91c1c; } .flag.upsell { color: #0e7490; }
.flag.idle_seats { color: #a16207; }
.muted { color: var(--muted); }
footer { margin-top: 36px; color: var(--muted); font-size: 13px; }
footer dt { font-weight: 600; color: var(--ink); }
footer dd { margin: 0 0 6px; }
@media (max-width: 760px) {
  main { padding: 12px; }
  table { font-size: 12px; }
  th, td { padding: 4px 4px; }
}
@media print {
  @page { margin: 12mm; }
  body { font-size: 10.5pt; }
  table { font-size: 8.5pt; }
  th, td { padding: 2px 4px; }
  .band { min-width: 0; font-size: 8pt; }
  .table-wrap { overflow: visible; }
  main { max-width: none; padding: 0; }
  section, .kpi, tr { break-inside: avoid; }
  h2 { break-after: avoid; }
  .kpi { border-color: #999; background: none; }
  tbody tr:nth-child(even) { background: none; }
  .band, .flag { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""

_DEFINITIONS: Final = (
    ("DAU / WAU / MAU", "distinct users with any event on a day / in the last 7 / 30 days."),
    ("Stickiness", "mean DAU over the window divided by the users active in the window."),
    ("Usage rate", "users active in the window divided by all users ever seen."),
    ("Adoption", "users of a feature divided by the users active in the window."),
    ("Utilization", "an account's active users divided by its seats (may exceed 100%)."),
    ("Health", "0-100 from utilization, stickiness, growth and breadth; green ≥ 70, yellow ≥ 40."),
    ("Segments", "days active in the window: daily ≥ 80%, frequent ≥ 40%, occasional > 0."),
)


def _kpis(report: Report) -> str:
    product = report["product"]
    dau = product["dau"]
    mean_dau = sum(day["users"] for day in dau) / len(dau) if dau else 0.0
    cards = [
        (
            "Active users",
            fmt_count(product["active_users"]),
            f"of {product['known_users']:,} known",
        ),
        ("Mean DAU", fmt_mean(mean_dau), f"last day: {dau[-1]['users']:,}" if dau else ""),
        ("WAU", fmt_count(product["wau"]), "last 7 days"),
        ("MAU", fmt_count(product["mau"]), "last 30 days"),
        ("Stickiness", fmt_pct(product["stickiness"], 1), "mean DAU / active"),
        ("Usage rate", fmt_pct(product["usage_rate"], 1), "active / known users"),
        ("Logins", fmt_count(product["logins"]), ""),
        ("Sessions", fmt_count(product["sessions"]), ""),
        ("Avg session", fmt_duration(product["avg_session_s"]), ""),
        ("Median session", fmt_duration(product["median_session_s"]), ""),
    ]
    items = "".join(
        f'<div class="kpi"><div class="value">{esc(value)}</div>'
        f'<div class="label">{esc(label)}{" · " + esc(hint) if hint else ""}</div></div>'
        for label, value, hint in cards
    )
    return f'<section class="kpis" aria-label="Product summary">{items}</section>'


def _section(title: str, body: str, note: str = "", css_id: str = "") -> str:
    anchor = f' id="{css_id}"' if css_id else ""
    note_html = f'<p class="note">{note}</p>' if note else ""
    return f"<section{anchor}><h2>{esc(title)}</h2>{note_html}{body}</section>"


def _trend(report: Report) -> str:
    product = report["product"]
    chart = svg.trend_chart(
        days=[day["day"] for day in product["dau"]],
        dau=[day["users"] for day in product["dau"]],
        wau=product["wau"],
        mau=product["mau"],
        releases=[(release["day"], release_label(release)) for release in report["releases"]],
    )
    note = (
        "Daily active users with their 7-day mean; WAU and MAU are the distinct users of "
        "the last 7 and 30 days of the window. Dashed red lines mark releases."
    )
    return _section("Active users", chart, note, "trend")


def _features(report: Report) -> str:
    features = sorted(report["features"], key=lambda row: (-(row["adoption"] or 0.0), row["name"]))
    shown = features[:_MAX_FEATURE_BARS]
    bars = [
        svg.Bar(
            label=feature["name"],
            value=feature["adoption"] or 0.0,
            text=f"{fmt_pct(feature['adoption'])} · {feature['users']:,} users",
            tooltip=(
                f"{feature['name']}: {fmt_pct(feature['adoption'], 1)} of active users, "
                f"{feature['users']:,} users, {feature['accounts']:,} accounts, "
                f"{feature['events']:,} events"
            ),
        )
        for feature in shown
    ]
    note = "Share of the window's active users who used each feature."
    if len(features) > len(shown):
        note += f" Top {len(shown)} of {len(features)} features."
    return _section(
        "Feature adoption", svg.bar_chart(bars, "Feature adoption"), esc(note), "features"
    )


def _least_healthy(report: Report) -> list[dict[str, Any]]:
    return sorted(report["accounts"], key=lambda row: (row["health"], row["account"]))


def _utilization(report: Report) -> str:
    accounts = _least_healthy(report)
    shown = accounts[:_MAX_ACCOUNT_BARS]
    bars = []
    for account in shown:
        seats = account["seats"]
        if seats is None:
            text = f"{account['active_users']:,} active · seats unknown"
        else:
            text = f"{fmt_pct(account['utilization'])} · {account['active_users']:,}/{seats:,}"
        bars.append(
            svg.Bar(
                label=account["account"],
                value=account["utilization"],
                text=text,
                colour=BAND_COLOURS.get(account["band"], "#6b7280"),
                tooltip=f"{account['account']}: {text}, health {account['health']} "
                f"({account['band']})",
            )
        )
    chart = svg.bar_chart(
        bars, "Seat utilization per account", reference=1.0, css_class="bars utilization"
    )
    note = (
        "Active users per licensed seat; the dashed line is 100% of seats. "
        "Bar colour is the account's health band."
    )
    if len(accounts) > len(shown):
        note += f" The {len(shown)} least healthy of {len(accounts)} accounts."
    return _section("Seat utilization", chart, esc(note), "utilization")


def _retention(report: Report) -> str:
    cohorts = [(row["cohort"], row["size"], row["weeks"]) for row in report["retention"]]
    note = (
        "Users grouped by the ISO week of their first event; each cell is the share of the "
        "cohort active that many weeks later."
    )
    return _section("Retention by weekly cohort", svg.heatmap(cohorts), esc(note), "retention")


def _segments(report: Report) -> str:
    counts = segment_counts(report)
    parts = [
        svg.Segment(label=name, count=count, colour=_SEGMENT_COLOURS[name])
        for name, count in counts.items()
    ]
    note = (
        "Known users by the share of the window's days they were active: daily ≥ 80%, "
        "frequent ≥ 40%, occasional > 0, inactive none."
    )
    return _section(
        "Frequency segments", svg.stacked_bar(parts, "Users by frequency"), esc(note), "segments"
    )


def _table(headers: Sequence[tuple[str, bool]], rows: list[list[tuple[str, str]]]) -> str:
    head = "".join(
        f'<th class="num">{esc(h)}</th>' if num else f"<th>{esc(h)}</th>" for h, num in headers
    )
    body = "".join(
        "<tr>" + "".join(f'<td class="{cls}">{html}</td>' for cls, html in row) + "</tr>"
        for row in rows
    )
    return (
        f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _flags_html(flags: list[str]) -> str:
    chips = "".join(f'<span class="flag {esc(flag)}">{esc(flag)}</span>' for flag in flags)
    return f'<div class="flags">{chips}</div>' if chips else ""


def _accounts(report: Report) -> str:
    accounts = _least_healthy(report)
    shown = accounts[:_MAX_TABLE_ROWS]
    rows = []
    for account in shown:
        colour = BAND_COLOURS.get(account["band"], "#6b7280")
        band = (
            f'<span class="band" style="background:{colour}">'
            f"{account['health']} {esc(account['band'])}</span>"
        )
        rows.append(
            [
                ("name", esc(account["account"])),
                ("num", fmt_count(account["seats"])),
                ("num", fmt_count(account["active_users"])),
                ("num", fmt_pct(account["utilization"])),
                ("nowrap", account_trend(account)),
                ("num", fmt_pct(account["adoption_rate"])),
                ("num", fmt_ratio(account["growth"])),
                ("num", fmt_count(account["integrations"])),
                ("num", fmt_count(account["breadth"])),
                ("", band + _flags_html(account["flags"])),
            ]
        )
    headers = [
        ("Account", False),
        ("Seats", True),
        ("Active", True),
        ("Utilization", True),
        ("Weekly active", False),
        ("Adoption", True),
        ("Growth", True),
        ("Integr.", True),
        ("Features", True),
        ("Health and flags", False),
    ]
    note = (
        "Least healthy first. Adoption: mean unique daily logins per seat. Growth: active "
        "users against the previous window of the same length. Integr.: distinct "
        "integrations used."
    )
    if len(accounts) > len(shown):
        note += f" First {len(shown)} of {len(accounts)}; `usage report --format csv "
        note += "--table accounts` exports all."
    if not shown:
        return _section("Accounts", '<p class="muted">No accounts in this window.</p>')
    return _section("Accounts", _table(headers, rows), esc(note), "accounts")


def _attention(report: Report) -> str:
    listed = attention_users(report)
    shown = listed[:_MAX_TABLE_ROWS]
    rows = [
        [
            ("name", esc(user["user"])),
            ("name", esc(user.get("account") or MISSING)),
            ("", esc(reason)),
            ("", esc(user["segment"])),
            ("num", fmt_count(user["active_days"])),
            ("num", fmt_count(user["logins"])),
            ("nowrap", esc((user.get("last_seen") or MISSING)[:16].replace("T", " "))),
        ]
        for user, reason in shown
    ]
    headers = [
        ("User", False),
        ("Account", False),
        ("Why", False),
        ("Segment", False),
        ("Active days", True),
        ("Logins", True),
        ("Last seen (UTC)", False),
    ]
    if not shown:
        body = '<p class="muted">Nobody: every known user was active in this window.</p>'
        return _section("Users needing attention", body, "", "attention")
    note = (
        "Seats unused in the window, occasional users of accounts at risk of churn, and "
        "users seen on only a day or two."
    )
    if len(listed) > len(shown):
        note += f" First {len(shown)} of {len(listed)}."
    return _section("Users needing attention", _table(headers, rows), esc(note), "attention")


def _footer(generated: str) -> str:
    items = "".join(f"<dt>{esc(term)}</dt><dd>{esc(text)}</dd>" for term, text in _DEFINITIONS)
    return (
        f"<footer><dl>{items}</dl><p>Generated by uptake at {esc(generated)}. "
        "All days are UTC; the window includes its first day and excludes its last.</p>"
        "</footer>"
    )


def render_html(report: Report, generated: datetime | None = None, *, scope: str = "") -> str:
    """Return the whole HTML report for a usage ``report`` as one self-contained document.

    ``generated`` is the time stamped in the footer (now, UTC, by default; tests pass a
    fixed one so the output is reproducible). ``scope`` names the filters that narrowed
    the report (e.g. ``account acme``), shown under the title.
    """
    stamp = (generated or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    window = report["window"]
    span = f"{window['since']} → {window['until']}"
    releases = ", ".join(
        f"{esc(release['version'])} on {esc(release['day'])}" for release in report["releases"]
    )
    subtitle = f"{esc(span)} (UTC, end exclusive)"
    if scope:
        subtitle += f" · only {esc(scope)}"
    if releases:
        subtitle += f" · releases: {releases}"
    body = "".join(
        [
            f"<header><h1>Product usage</h1><p>{subtitle}</p></header>",
            _kpis(report),
            goals_html(report),
            _trend(report),
            engagement_sections(report),
            _features(report),
            _utilization(report),
            _retention(report),
            _segments(report),
            _accounts(report),
            _attention(report),
            _footer(stamp),
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>uptake usage report {esc(span)}</title>"
        f"<style>{_CSS}{engagement_css()}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )
