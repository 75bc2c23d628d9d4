"""The engagement figures (docs/metrics.md, *Engagement*) in each output format.

``engagement_tables`` gives the terminal tables (lifecycle with pulse, release impact with
the features that moved most, activation summary, power users), ``ENGAGEMENT_CSV`` and
``engagement_csv_rows`` the CSV tables (``--table lifecycle|releases|power_users|
activation``), ``engagement_sections`` the HTML sections, and ``account_trend`` the
sparkline of an account row. The renderers call these; nothing here reads a store.
"""

from __future__ import annotations

from typing import Any, Final

from rich import box
from rich.table import Table
from rich.text import Text

from uptake_cli import svg_engagement
from uptake_cli._present import MISSING, Report, fmt_count, fmt_duration, fmt_pct
from uptake_cli.svg import esc

__all__ = [
    "ENGAGEMENT_CSV",
    "account_trend",
    "engagement_css",
    "engagement_csv_rows",
    "engagement_sections",
    "engagement_tables",
    "release_label",
]

#: Features listed per release in the terminal and HTML (most fallen, most risen).
_MOVERS: Final = 3
_ACTIVATION_DAYS: Final = 14

#: The CSV tables of the engagement figures and their columns.
ENGAGEMENT_CSV: Final[dict[str, tuple[str, ...]]] = {
    "lifecycle": ("week", "new", "returning", "resurrecting", "dormant", "pulse"),
    "releases": (
        "day",
        "version",
        "after_days",
        "before_since",
        "before_until",
        "dau_before",
        "dau_after",
        "feature",
        "users_before",
        "users_after",
        "change",
    ),
    "power_users": ("days", "l7", "l30"),
    "activation": (
        "core",
        "new_users",
        "activated",
        "rate",
        "median_ttv_s",
        *(f"by_day_{k}" for k in range(1, _ACTIVATION_DAYS + 1)),
    ),
}


def engagement_csv_rows(report: Report, table: str) -> list[dict[str, Any]]:
    """The rows of one engagement CSV table (column name -> value; None is an empty cell).

    ``releases``: one row per (release, feature that moved), a release without any
    feature once with empty feature cells. ``power_users``: one row per k = 1..30 (``l7``
    empty past 7). ``activation``: one row, none when the report has no core features.
    """
    if table == "lifecycle":
        return list(report.get("lifecycle") or [])
    if table == "releases":
        rows: list[dict[str, Any]] = []
        for release in report.get("releases") or []:
            base = {
                "day": release["day"],
                "version": release["version"],
                "after_days": release.get("after_days"),
                "before_since": (release.get("before") or {}).get("since"),
                "before_until": (release.get("before") or {}).get("until"),
                "dau_before": release.get("dau_before"),
                "dau_after": release.get("dau_after"),
            }
            moved = release.get("features") or []
            if not moved:
                rows.append(base)
            for feature in moved:
                rows.append(
                    {
                        **base,
                        "feature": feature["name"],
                        "users_before": feature["users_before"],
                        "users_after": feature["users_after"],
                        "change": feature["change"],
                    }
                )
        return rows
    if table == "power_users":
        power = report.get("power_users") or {"l7": [], "l30": []}
        l7, l30 = power["l7"], power["l30"]
        return [
            {"days": k, "l7": l7[k - 1] if k <= len(l7) else None, "l30": l30[k - 1]}
            for k in range(1, len(l30) + 1)
        ]
    if table == "activation":
        found = report.get("activation")
        if not found:
            return []
        row = {key: found[key] for key in ("core", "new_users", "activated", "rate")}
        row["median_ttv_s"] = found["median_ttv_s"]
        for k, share in enumerate(found["by_day"], 1):
            row[f"by_day_{k}"] = share
        return [row]
    raise ValueError(f"unknown table {table!r}")


# -- terminal ----------------------------------------------------------------------------


def _fmt_change(change: float | None) -> Text:
    if change is None:
        return Text("new", style="cyan")
    style = "green" if change > 0 else "red" if change < 0 else ""
    return Text(f"{change:+.0%}", style=style)


def _fmt_pulse(pulse: float | None) -> Text:
    if pulse is None:
        return Text(MISSING, style="dim")
    return Text(f"{pulse:.2f}", style="green" if pulse >= 1 else "red")


def _lifecycle_table(report: Report) -> Table:
    table = Table(
        title="Lifecycle by ISO week",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption="Pulse = (new + resurrecting) / dormant: above 1 the active base grows.",
        caption_justify="left",
    )
    for heading in ("Week", "New", "Returning", "Resurrecting", "Dormant", "Pulse"):
        table.add_column(heading, justify="left" if heading == "Week" else "right")
    for week in report.get("lifecycle") or []:
        table.add_row(
            week["week"],
            fmt_count(week["new"]),
            fmt_count(week["returning"]),
            fmt_count(week["resurrecting"]),
            Text(f"-{week['dormant']}" if week["dormant"] else "0", style="red"),
            _fmt_pulse(week["pulse"]),
        )
    return table


def _movers(release: dict[str, Any]) -> list[dict[str, Any]]:
    """The features that moved most: the biggest falls, then the biggest rises and new ones."""
    moved = [f for f in release.get("features") or [] if f["users_before"] or f["users_after"]]
    falls = [f for f in moved if f["change"] is not None and f["change"] < 0][:_MOVERS]
    rises = [f for f in reversed(moved) if f["change"] is None or f["change"] > 0][:_MOVERS]
    return falls + [f for f in rises if f not in falls]


def _releases_table(report: Report) -> Table:
    table = Table(
        title="Release impact (mean daily users, same number of days before and after)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for heading in ("Release", "Days", "DAU before → after", "Moved most"):
        table.add_column(heading, justify="right" if heading == "Days" else "left")
    for release in report.get("releases") or []:
        if "after_days" not in release:
            continue
        moved = Text()
        for index, feature in enumerate(_movers(release)):
            if index:
                moved.append("\n")
            moved.append(f"{feature['name']} ")
            moved.append(
                f"{feature['users_before']:.1f} → {feature['users_after']:.1f} ", style="dim"
            )
            moved.append_text(_fmt_change(feature["change"]))
        before, after = release["dau_before"], release["dau_after"]
        change = after / before - 1 if before else None
        dau = Text(f"{before:.1f} → {after:.1f} ")
        dau.append_text(_fmt_change(change))
        table.add_row(
            Text(f"{release['version']}\n{release['day']}"),
            str(release["after_days"]),
            dau,
            moved if moved else Text(MISSING, style="dim"),
        )
    return table


def _activation_table(report: Report) -> Table:
    found = report.get("activation")
    table = Table(
        title="Activation (new users reaching a core feature)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_header=False,
    )
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    if not found:
        table.caption = "No core features: pass --core NAME,... (or set them in the config)."
        table.caption_justify = "left"
        return table
    by_day = found["by_day"]
    table.add_row("Core features", Text(", ".join(found["core"]), overflow="fold"))
    table.add_row("New users", fmt_count(found["new_users"]))
    table.add_row("Activated (≤ 14 days)", fmt_count(found["activated"]))
    table.add_row("Activation rate", fmt_pct(found["rate"], 1))
    table.add_row("Median time to value", fmt_duration(found["median_ttv_s"]))
    for k in (1, 3, 7, 14):
        table.add_row(f"Reached by day {k}", fmt_pct(by_day[k - 1]))
    return table


def _power_table(report: Report) -> Table:
    power = report.get("power_users") or {"l7": [], "l30": []}
    table = Table(
        title="Power users (users by active days in the last 7 / 30 days)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("Curve", style="bold")
    table.add_column("Users by active days (1 → n)")
    table.add_column("Most days", justify="right")
    for name in ("l7", "l30"):
        counts = power[name]
        total = sum(counts)
        heavy = sum(counts[len(counts) * 2 // 3 :])
        table.add_row(
            name.upper(),
            Text(" ".join(str(n) for n in counts), overflow="fold"),
            fmt_pct(heavy / total if total else None),
        )
    table.caption = "Most days: share of active users on at least two thirds of the days."
    table.caption_justify = "left"
    return table


def engagement_tables(report: Report) -> list[Table]:
    """The engagement tables of a report (those whose figures the report holds)."""
    tables = []
    if "lifecycle" in report:
        tables.append(_lifecycle_table(report))
    if any("after_days" in release for release in report.get("releases") or []):
        tables.append(_releases_table(report))
    if "activation" in report:
        tables.append(_activation_table(report))
    if "power_users" in report:
        tables.append(_power_table(report))
    return tables


# -- HTML --------------------------------------------------------------------------------


def release_label(release: dict[str, Any]) -> str:
    """A release marker's text on the trend chart: the version and its DAU change."""
    before, after = release.get("dau_before"), release.get("dau_after")
    if before is None or after is None:
        return str(release["version"])
    change = f"{after / before - 1:+.0%}" if before else "new"
    return f"{release['version']} · DAU {change}"


def account_trend(account: dict[str, Any]) -> str:
    """The sparkline of an account row's ``weekly_active`` (empty without the field)."""
    return svg_engagement.sparkline(account.get("weekly_active") or [])


def _section(title: str, body: str, note: str, css_id: str) -> str:
    return (
        f'<section id="{css_id}"><h2>{esc(title)}</h2><p class="note">{esc(note)}</p>'
        f"{body}</section>"
    )


def _release_cards(report: Report) -> str:
    cards = []
    for release in report.get("releases") or []:
        if "after_days" not in release:
            continue
        rows = "".join(
            f'<tr><td class="name">{esc(f["name"])}</td>'
            f'<td class="num">{f["users_before"]:.1f}</td>'
            f'<td class="num">{f["users_after"]:.1f}</td>'
            f'<td class="num {"down" if (f["change"] or 0) < 0 else "up"}">'
            f"{'new' if f['change'] is None else format(f['change'], '+.0%')}</td></tr>"
            for f in _movers(release)
        )
        before, after = release["dau_before"], release["dau_after"]
        cards.append(
            f'<div class="release-card"><h3>{esc(release["version"])} '
            f'<span class="muted">{esc(release["day"])}</span></h3>'
            f"<p>DAU {before:.1f} → {after:.1f} over {release['after_days']} day(s) "
            f"before and after</p>"
            + (
                "<table><thead><tr><th>Feature</th><th class=num>before</th>"
                f"<th class=num>after</th><th class=num>change</th></tr></thead>"
                f"<tbody>{rows}</tbody></table>"
                if rows
                else '<p class="muted">No feature used around it.</p>'
            )
            + "</div>"
        )
    return f'<div class="release-cards">{"".join(cards)}</div>' if cards else ""


_CSS: Final = """
.release-cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr));
  gap: 10px; }
.release-card { border: 1px solid var(--line); border-radius: 8px; padding: 8px 10px;
  background: var(--panel); }
.release-card h3 { margin: 0; font-size: 15px; }
.release-card p { margin: 2px 0 6px; font-size: 13px; }
.release-card td.down { color: #b91c1c; } .release-card td.up { color: #15803d; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
svg.spark { display: inline-block; vertical-align: middle; }
@media (max-width: 760px) { .pair { grid-template-columns: 1fr; } }
"""


def engagement_css() -> str:
    """The CSS the engagement sections need (added to the page's style sheet)."""
    return _CSS


def engagement_sections(report: Report) -> str:
    """The HTML sections of the engagement figures (empty for a report without them)."""
    parts = []
    if report.get("releases") and any("after_days" in r for r in report["releases"]):
        parts.append(
            _section(
                "Release impact",
                _release_cards(report),
                "Mean daily users of each feature over the same number of days before and "
                "after each release (at most 7); the features that fell and rose most.",
                "release-impact",
            )
        )
    if "lifecycle" in report:
        parts.append(
            _section(
                "Lifecycle",
                svg_engagement.lifecycle_chart(report["lifecycle"]),
                "Active users per ISO week: returning (also active the week before), "
                "resurrecting (back after a gap), new (first event ever); below zero, users "
                "active the week before but not this one. Pulse under each week.",
                "lifecycle",
            )
        )
    if "power_users" in report:
        power = report["power_users"]
        body = (
            '<div class="pair">'
            + svg_engagement.power_curve(power["l7"], "L7: active days of the last 7")
            + svg_engagement.power_curve(power["l30"], "L30: active days of the last 30")
            + "</div>"
        )
        parts.append(
            _section(
                "Power users",
                body,
                "Users by the number of days they were active, ending at the window's end: "
                "a curve leaning right means a habit.",
                "power-users",
            )
        )
    points = [
        svg_engagement.MatrixPoint(
            f["name"], f["adoption"], f["days_per_user"], f.get("quadrant") or ""
        )
        for f in report.get("features") or []
        if f.get("adoption") is not None and f.get("days_per_user") is not None
    ]
    if any("days_per_user" in f for f in report.get("features") or []):
        parts.append(
            _section(
                "Engagement matrix",
                svg_engagement.engagement_matrix(points),
                "Each feature by adoption and mean days of use per user; the dashed lines "
                "are the medians: core (wide and frequent), power (few, often), one-off "
                "(many, once), improve (neither).",
                "matrix",
            )
        )
    if "activation" in report:
        found = report["activation"]
        if found is None:
            body = (
                '<p class="muted">No core features given: run with --core NAME,... to see '
                "how fast new users reach value.</p>"
            )
        else:
            summary = (
                f"<p>{fmt_count(found['activated'])} of {fmt_count(found['new_users'])} new "
                f"users ({fmt_pct(found['rate'], 1)}) used a core feature "
                f"({esc(', '.join(found['core']))}) within 14 days; median time to value "
                f"{esc(fmt_duration(found['median_ttv_s']))}.</p>"
            )
            body = summary + svg_engagement.activation_curve(found["by_day"])
        parts.append(
            _section(
                "Activation",
                body,
                "Share of new users reaching a core feature within k days, among those "
                "seen at least k days before the window's end (recent users are not "
                "counted as failures).",
                "activation",
            )
        )
    return "".join(parts)
