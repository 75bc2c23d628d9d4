"""Inline SVG charts of the engagement figures (docs/metrics.md, *Engagement*).

Same conventions as ``uptake_cli.svg``: plain values in, one ``<svg>`` string out, sized
by its ``viewBox``, every user-given text escaped. Charts: ``lifecycle_chart`` (stacked
weekly bars, dormant users below zero), ``power_curve`` (users by active days of the
last 7 or 30), ``activation_curve`` (share of new users reaching a core feature by day
k), ``engagement_matrix`` (features by adoption and days per user, median lines) and
``sparkline`` (an account's weekly active users).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from uptake_cli.svg import empty_chart, esc, open_chart

__all__ = [
    "LIFECYCLE_COLOURS",
    "QUADRANT_COLOURS",
    "MatrixPoint",
    "activation_curve",
    "engagement_matrix",
    "lifecycle_chart",
    "power_curve",
    "sparkline",
]

_FONT: Final = 12
_AXIS: Final = "#6b7280"
_GRID: Final = "#e5e7eb"
_INK: Final = "#111827"
_LINE: Final = "#2563eb"
#: Lifecycle parts, bottom to top above zero, then dormant below it.
LIFECYCLE_COLOURS: Final = {
    "returning": "#2563eb",
    "resurrecting": "#f59e0b",
    "new": "#16a34a",
    "dormant": "#dc2626",
}
QUADRANT_COLOURS: Final = {
    "core": "#16a34a",
    "power": "#7c3aed",
    "one_off": "#f59e0b",
    "improve": "#dc2626",
}


def _n(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _nice(value: float) -> float:
    """A round axis end at or above ``value`` (1, 2, 5 x 10^n; at least 1)."""
    if value <= 1:
        return 1.0
    magnitude = 1.0
    while magnitude * 10 < value:
        magnitude *= 10
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= value)


def _short(label: str, limit: int) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def lifecycle_chart(
    weeks: Sequence[dict[str, object]], *, width: int = 950, height: int = 300
) -> str:
    """Stacked weekly bars: returning, resurrecting and new users up, dormant users down.

    Each bar's pulse ((new + resurrecting) / dormant) is written under the week.
    """
    if not weeks:
        return empty_chart(width, "No weeks in this window", "lifecycle")
    left, right, top, bottom = 44, 130, 16, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    up = [int(w["new"]) + int(w["returning"]) + int(w["resurrecting"]) for w in weeks]  # type: ignore[call-overload]
    down = [int(w["dormant"]) for w in weeks]  # type: ignore[call-overload]
    top_value = _nice(max(up))
    # Dormant users get at least a quarter of the height, so their bars and ticks read.
    bottom_value = max(_nice(max(down)), top_value / 4) if max(down) else 0.0
    span = top_value + bottom_value
    zero = top + plot_h * top_value / span

    def y_of(value: float) -> float:
        return zero - plot_h * value / span

    slot = plot_w / len(weeks)
    bar = max(min(slot * 0.7, 60), 2)
    parts = [open_chart(width, height, "Lifecycle: users per week by status", "lifecycle")]
    for value in (top_value, top_value / 2, 0, -bottom_value):
        if value < 0 and not bottom_value:
            continue
        y = y_of(value)
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{_n(y)}" y2="{_n(y)}" '
            f'stroke="{_INK if value == 0 else _GRID}"/>'
            f'<text x="{left - 6}" y="{_n(y + 4)}" text-anchor="end" fill="{_AXIS}">'
            f"{_n(abs(value))}</text>"
        )
    label_every = max(1, round(len(weeks) / 12))
    for index, week in enumerate(weeks):
        x = left + slot * index + (slot - bar) / 2
        level = 0.0
        tip = (
            f"{week['week']}: {week['new']} new, {week['returning']} returning, "
            f"{week['resurrecting']} resurrecting, {week['dormant']} dormant"
        )
        for part in ("returning", "resurrecting", "new"):
            count = int(week[part])  # type: ignore[call-overload]
            if count:
                y1, y2 = y_of(level + count), y_of(level)
                parts.append(
                    f'<rect class="{part}" x="{_n(x)}" y="{_n(y1)}" width="{_n(bar)}" '
                    f'height="{_n(y2 - y1)}" fill="{LIFECYCLE_COLOURS[part]}">'
                    f"<title>{esc(tip)}</title></rect>"
                )
                level += count
        dormant = int(week["dormant"])  # type: ignore[call-overload]
        if dormant:
            parts.append(
                f'<rect class="dormant" x="{_n(x)}" y="{_n(zero)}" width="{_n(bar)}" '
                f'height="{_n(y_of(-dormant) - zero)}" fill="{LIFECYCLE_COLOURS["dormant"]}">'
                f"<title>{esc(tip)}</title></rect>"
            )
        centre = x + bar / 2
        if index % label_every == 0:
            parts.append(
                f'<text x="{_n(centre)}" y="{height - 26}" text-anchor="middle" '
                f'fill="{_AXIS}">{esc(str(week["week"])[5:])}</text>'
            )
            pulse = week["pulse"]
            text = "–" if pulse is None else f"{float(pulse):.1f}"  # type: ignore[arg-type]
            parts.append(
                f'<text x="{_n(centre)}" y="{height - 10}" text-anchor="middle" '
                f'fill="{_INK}">{text}</text>'
            )
    parts.append(
        f'<text x="{left - 6}" y="{height - 10}" text-anchor="end" fill="{_AXIS}">pulse</text>'
    )
    legend_x = left + plot_w + 16
    for row, part in enumerate(("new", "resurrecting", "returning", "dormant")):
        y = top + 8 + row * 20
        parts.append(
            f'<rect x="{legend_x}" y="{y - 9}" width="12" height="12" '
            f'fill="{LIFECYCLE_COLOURS[part]}"/>'
            f'<text x="{legend_x + 18}" y="{y + 1}" fill="{_INK}">{part}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def power_curve(counts: Sequence[int], label: str, *, width: int = 460, height: int = 200) -> str:
    """Bars of users active on exactly k of the last ``len(counts)`` days (k = 1..n)."""
    total = sum(counts)
    if not total:
        return empty_chart(width, f"{label}: nobody active", "power")
    left, right, top, bottom = 40, 10, 24, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = _nice(max(counts))
    slot = plot_w / len(counts)
    bar = max(slot * 0.75, 1)
    parts = [open_chart(width, height, label, "power")]
    parts.append(f'<text x="{left}" y="14" fill="{_INK}" font-weight="600">{esc(label)}</text>')
    for value in (peak, peak / 2):
        y = top + plot_h * (1 - value / peak)
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{_n(y)}" y2="{_n(y)}" stroke="{_GRID}"/>'
            f'<text x="{left - 6}" y="{_n(y + 4)}" text-anchor="end" fill="{_AXIS}">'
            f"{_n(value)}</text>"
        )
    base = top + plot_h
    parts.append(
        f'<line x1="{left}" x2="{left + plot_w}" y1="{base}" y2="{base}" stroke="{_INK}"/>'
    )
    every = 1 if len(counts) <= 10 else 5
    for index, count in enumerate(counts):
        x = left + slot * index + (slot - bar) / 2
        h = plot_h * count / peak
        share = count / total
        parts.append(
            f'<rect x="{_n(x)}" y="{_n(base - h)}" width="{_n(bar)}" height="{_n(h)}" '
            f'fill="{_LINE}"><title>{count} users ({share:.0%}) active on '
            f"{index + 1} day(s)</title></rect>"
        )
        if (index + 1) % every == 0 or index == 0:
            parts.append(
                f'<text x="{_n(x + bar / 2)}" y="{base + 16}" text-anchor="middle" '
                f'fill="{_AXIS}">{index + 1}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def activation_curve(by_day: Sequence[float | None], *, width: int = 950, height: int = 220) -> str:
    """Line of the share of new users who reached a core feature within k days (k = 1..14)."""
    known = [(k, share) for k, share in enumerate(by_day, 1) if share is not None]
    if not known:
        return empty_chart(width, "No new users observed long enough yet", "activation")
    left, right, top, bottom = 44, 20, 16, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    days = len(by_day)

    def x_of(k: int) -> float:
        return left + plot_w * (k - 1) / max(days - 1, 1)

    def y_of(share: float) -> float:
        return top + plot_h * (1 - share)

    parts = [
        open_chart(
            width, height, "Activation: share of new users reaching value by day", "activation"
        )
    ]
    for share in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = y_of(share)
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{_n(y)}" y2="{_n(y)}" '
            f'stroke="{_INK if share == 0 else _GRID}"/>'
            f'<text x="{left - 6}" y="{_n(y + 4)}" text-anchor="end" fill="{_AXIS}">'
            f"{share:.0%}</text>"
        )
    for k in range(1, days + 1):
        parts.append(
            f'<text x="{_n(x_of(k))}" y="{height - 14}" text-anchor="middle" '
            f'fill="{_AXIS}">{k}</text>'
        )
    path = "M" + " L".join(f"{_n(x_of(k))},{_n(y_of(share))}" for k, share in known)
    parts.append(f'<path d="{path}" fill="none" stroke="{_LINE}" stroke-width="2.5"/>')
    for k, share in known:
        parts.append(
            f'<circle cx="{_n(x_of(k))}" cy="{_n(y_of(share))}" r="4" fill="{_LINE}">'
            f"<title>day {k}: {share:.0%}</title></circle>"
        )
    parts.append(
        f'<text x="{left + plot_w}" y="{height - 1}" text-anchor="end" fill="{_AXIS}">'
        "days since the first event</text></svg>"
    )
    return "".join(parts)


@dataclass(frozen=True)
class MatrixPoint:
    """One feature on the engagement matrix."""

    name: str
    adoption: float
    days_per_user: float
    quadrant: str


def engagement_matrix(points: Sequence[MatrixPoint], *, width: int = 950, height: int = 380) -> str:
    """Scatter of features: adoption (x) against days of use per user (y), median lines."""
    if not points:
        return empty_chart(width, "No feature used by an active user in this window", "matrix")
    left, right, top, bottom = 50, 150, 20, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    x_max = min(1.0, max(0.1, math.ceil(max(p.adoption for p in points) * 10.5) / 10))
    y_max = _nice(max(p.days_per_user for p in points) * 1.1)
    mid_x = statistics.median(p.adoption for p in points)
    mid_y = statistics.median(p.days_per_user for p in points)

    def x_of(value: float) -> float:
        return left + plot_w * min(value, x_max) / x_max

    def y_of(value: float) -> float:
        return top + plot_h * (1 - value / y_max)

    parts = [
        open_chart(width, height, "Engagement matrix: adoption against days per user", "matrix")
    ]
    parts.append(
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
        f'stroke="{_GRID}"/>'
    )
    for step in range(5):
        share = x_max * step / 4
        parts.append(
            f'<text x="{_n(x_of(share))}" y="{top + plot_h + 16}" text-anchor="middle" '
            f'fill="{_AXIS}">{share:.0%}</text>'
        )
        days = y_max * step / 4
        parts.append(
            f'<text x="{left - 6}" y="{_n(y_of(days) + 4)}" text-anchor="end" '
            f'fill="{_AXIS}">{_n(days)}</text>'
        )
    parts.append(
        f'<line class="median" x1="{_n(x_of(mid_x))}" x2="{_n(x_of(mid_x))}" y1="{top}" '
        f'y2="{top + plot_h}" stroke="{_AXIS}" stroke-dasharray="5 4"/>'
        f'<line class="median" x1="{left}" x2="{left + plot_w}" y1="{_n(y_of(mid_y))}" '
        f'y2="{_n(y_of(mid_y))}" stroke="{_AXIS}" stroke-dasharray="5 4"/>'
    )
    corners = (
        ("core", left + plot_w - 6, top + 14, "end"),
        ("power", left + 6, top + 14, "start"),
        ("one_off", left + plot_w - 6, top + plot_h - 8, "end"),
        ("improve", left + 6, top + plot_h - 8, "start"),
    )
    for quadrant, corner_x, corner_y, anchor in corners:
        parts.append(
            f'<text x="{corner_x}" y="{corner_y}" text-anchor="{anchor}" '
            f'fill="{QUADRANT_COLOURS[quadrant]}" '
            f'font-weight="600">{quadrant.replace("_", "-")}</text>'
        )
    for point in points:
        x, y = x_of(point.adoption), y_of(point.days_per_user)
        colour = QUADRANT_COLOURS.get(point.quadrant, _AXIS)
        parts.append(
            f'<circle cx="{_n(x)}" cy="{_n(y)}" r="5" fill="{colour}" fill-opacity="0.85">'
            f"<title>{esc(point.name)}: adoption {point.adoption:.0%}, "
            f"{point.days_per_user:.1f} days per user ({esc(point.quadrant)})</title></circle>"
            f'<text x="{_n(x + 7)}" y="{_n(y + 4)}" fill="{_INK}" font-size="11">'
            f"{esc(_short(point.name, 18))}</text>"
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle" fill="{_AXIS}">'
        "adoption (users / active users)</text>"
        f'<text x="{left + plot_w + 12}" y="{top + 12}" fill="{_AXIS}">days per user ↑</text>'
        f'<text x="{left + plot_w + 12}" y="{top + 30}" fill="{_AXIS}">dashed: medians</text>'
        "</svg>"
    )
    return "".join(parts)


def sparkline(values: Sequence[int], *, width: int = 90, height: int = 22) -> str:
    """A small line of weekly values (an account's weekly active users), last point marked."""
    label = "weekly active users: " + ", ".join(str(v) for v in values)
    if not values:
        return ""
    peak = max(*values, 1)
    step = (width - 6) / max(len(values) - 1, 1)
    points = [(3 + step * i, height - 3 - (height - 6) * v / peak) for i, v in enumerate(values)]
    path = "M" + " L".join(f"{_n(x)},{_n(y)}" for x, y in points)
    last_x, last_y = points[-1]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="spark" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{esc(label)}">'
        f"<title>{esc(label)}</title>"
        f'<path d="{path}" fill="none" stroke="{_LINE}" stroke-width="1.5"/>'
        f'<circle cx="{_n(last_x)}" cy="{_n(last_y)}" r="2" fill="{_LINE}"/></svg>'
    )
