"""Hand-written inline SVG charts for the HTML report: no JavaScript, no network.

Each function takes plain values and returns one ``<svg>`` element as a string, sized by
its ``viewBox`` so it scales to the page width and prints crisply. Every piece of text
that came from users (feature, account, version names) goes through ``esc``; long labels
are shortened on the chart and shown whole in a hover ``<title>``.

Charts: ``trend_chart`` (DAU with its 7-day mean, WAU and MAU levels, release markers),
``bar_chart`` (horizontal bars: feature adoption, seat utilization), ``heatmap`` (weekly
cohort retention) and ``stacked_bar`` (frequency segments).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from html import escape
from typing import Final

__all__ = [
    "Bar",
    "Segment",
    "bar_chart",
    "empty_chart",
    "esc",
    "heatmap",
    "open_chart",
    "stacked_bar",
    "trend_chart",
]

_FONT: Final = 12
_AXIS: Final = "#6b7280"
_GRID: Final = "#e5e7eb"
_INK: Final = "#111827"
_DAU: Final = "#2563eb"
_MEAN: Final = "#1e3a8a"
_WAU: Final = "#7c3aed"
_MAU: Final = "#0d9488"
_RELEASE: Final = "#dc2626"


# C0 control characters (other than tab and newlines) are not allowed in HTML or XML text.
_CONTROL: Final = {code: "\ufffd" for code in range(32) if chr(code) not in "\t\n\r"}


def esc(text: object) -> str:
    """Escape text for HTML or SVG, attributes included; control characters become U+FFFD.

    >>> esc('Fox & "Hound" <EU>')
    'Fox &amp; &quot;Hound&quot; &lt;EU&gt;'
    """
    return escape(str(text).translate(_CONTROL), quote=True)


def _n(value: float) -> str:
    # Coordinates with at most one decimal keep the markup small and diffs readable.
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _short(label: str, limit: int) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def open_chart(width: int, height: int, label: str, css_class: str) -> str:
    """The opening ``<svg>`` tag of a chart, with its accessible label and title."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {css_class}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{esc(label)}" font-size="{_FONT}">'
        f"<title>{esc(label)}</title>"
    )


def empty_chart(width: int, message: str, css_class: str) -> str:
    """A small chart that only says ``message`` (no data to draw)."""
    height = 60
    return (
        open_chart(width, height, message, f"{css_class} empty")
        + f'<text x="{width // 2}" y="{height // 2}" text-anchor="middle" '
        f'dominant-baseline="middle" fill="{_AXIS}">{esc(message)}</text></svg>'
    )


def _axis(value: float, ticks: int = 4) -> tuple[float, float]:
    """Return ``(top, step)`` of a y axis from 0 with about ``ticks`` round steps.

    >>> _axis(165), _axis(3.2), _axis(0)
    ((200.0, 50.0), (4.0, 1.0), (1.0, 1.0))
    """
    rough = max(value, 1.0) / ticks
    magnitude = 10 ** math.floor(math.log10(rough))
    # User counts are whole numbers: a step must be one too (no 2.5 below 10).
    step = next(
        m * magnitude
        for m in (1, 2, 2.5, 5, 10)
        if m * magnitude >= rough and float(m * magnitude).is_integer()
    )
    step = float(max(step, 1))
    return float(math.ceil(max(value, 1.0) / step) * step), step


def _mean_7(values: Sequence[int]) -> list[float]:
    """Trailing 7-day means, from the 7th day on (earlier days have no full week)."""
    return [sum(values[index - 6 : index + 1]) / 7 for index in range(6, len(values))]


def _path(points: Sequence[tuple[float, float]]) -> str:
    return "M" + " L".join(f"{_n(x)},{_n(y)}" for x, y in points)


def trend_chart(
    days: Sequence[str],
    dau: Sequence[int],
    wau: int,
    mau: int,
    *,
    releases: Sequence[tuple[str, str]] = (),
    width: int = 950,
    height: int = 280,
) -> str:
    """Line chart of daily active users over the window.

    Draws DAU per day, its trailing 7-day mean, the WAU and MAU of the report as levels
    over the trailing 7 and 30 days they count (they end at ``until``), and a marker per
    release ``(day, version)`` that falls inside the window. ``days`` are ``YYYY-MM-DD``.
    """
    if not days:
        return empty_chart(width, "No days in this window", "trend")
    left, right, top, bottom = 44, 84, 30, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    y_max, y_step = _axis(max([*dau, wau, mau]))
    count = len(days)
    step = plot_w / (count - 1) if count > 1 else 0.0

    def x_at(index: float) -> float:
        return left + (index * step if count > 1 else plot_w / 2)

    def y_at(value: float) -> float:
        return top + plot_h - value / y_max * plot_h

    parts = [open_chart(width, height, "Daily, weekly and monthly active users", "trend")]
    for tick in range(round(y_max / y_step) + 1):
        value = tick * y_step
        y = y_at(value)
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{_n(y)}" y2="{_n(y)}" '
            f'stroke="{_GRID}"/>'
            f'<text x="{left - 6}" y="{_n(y)}" text-anchor="end" dominant-baseline="middle" '
            f'fill="{_AXIS}">{value:,.0f}</text>'
        )
    label_every = max(1, math.ceil(count / 8))
    for index in range(0, count, label_every):
        parts.append(
            f'<text x="{_n(x_at(index))}" y="{height - bottom + 18}" text-anchor="middle" '
            f'fill="{_AXIS}">{esc(days[index][5:])}</text>'
        )
    first_day = date.fromisoformat(days[0])
    for release_day, version in releases:
        offset = (date.fromisoformat(release_day) - first_day).days
        if not 0 <= offset < count:
            continue
        marker_x = _n(x_at(offset))
        parts.append(
            f'<g class="release"><title>Release {esc(version)} on {esc(release_day)}</title>'
            f'<line x1="{marker_x}" x2="{marker_x}" y1="{top - 4}" y2="{top + plot_h}" '
            f'stroke="{_RELEASE}" stroke-dasharray="4 3"/>'
            f'<text x="{marker_x}" y="{top - 10}" text-anchor="middle" fill="{_RELEASE}" '
            f'font-weight="600">{esc(_short(version, 18))}</text></g>'
        )
    points = [(x_at(i), y_at(v)) for i, v in enumerate(dau)]
    baseline = _n(y_at(0))
    area = f"{_path(points)} L{_n(points[-1][0])},{baseline} L{_n(points[0][0])},{baseline} Z"
    parts.append(f'<path class="dau-area" d="{area}" fill="{_DAU}" fill-opacity="0.10"/>')
    parts.append(
        f'<path class="dau" d="{_path(points)}" fill="none" stroke="{_DAU}" '
        f'stroke-width="1.5" stroke-linejoin="round"/>'
    )
    means = [(x_at(i + 6), y_at(v)) for i, v in enumerate(_mean_7(dau))]
    if means:
        parts.append(
            f'<path class="dau-mean" d="{_path(means)}" fill="none" stroke="{_MEAN}" '
            f'stroke-width="2.5" stroke-linejoin="round"/>'
        )
    # Keep the WAU and MAU labels apart when the two levels are close.
    wau_label_y, mau_label_y = y_at(wau), y_at(mau)
    overlap = 14 - (wau_label_y - mau_label_y)
    if overlap > 0:
        wau_label_y, mau_label_y = wau_label_y + overlap / 2, mau_label_y - overlap / 2
    for label, value, span, colour, label_y in (
        ("WAU", wau, 7, _WAU, wau_label_y),
        ("MAU", mau, 30, _MAU, mau_label_y),
    ):
        start = x_at(max(0, count - span))
        level = _n(y_at(value))
        parts.append(
            f'<g class="{label.lower()}"><title>{label} {value}: distinct users in the '
            f"last {span} days of the window</title>"
            f'<line x1="{_n(start)}" x2="{left + plot_w}" y1="{level}" y2="{level}" '
            f'stroke="{colour}" stroke-width="2" stroke-dasharray="6 3"/>'
            f'<text x="{left + plot_w + 6}" y="{_n(label_y)}" dominant-baseline="middle" '
            f'fill="{colour}" font-weight="600">{label} {value}</text></g>'
        )
    for index, value in enumerate(dau):
        parts.append(
            f'<circle cx="{_n(x_at(index))}" cy="{_n(y_at(value))}" r="2" fill="{_DAU}">'
            f"<title>{esc(days[index])}: {value} active users</title></circle>"
        )
    legend = [("DAU", _DAU, "1.5")]
    if means:
        legend.append(("DAU, 7-day mean", _MEAN, "2.5"))
    x = float(left)
    for name, colour, stroke in legend:
        parts.append(
            f'<line x1="{_n(x)}" x2="{_n(x + 18)}" y1="10" y2="10" stroke="{colour}" '
            f'stroke-width="{stroke}"/><text x="{_n(x + 22)}" y="10" '
            f'dominant-baseline="middle" fill="{_INK}">{name}</text>'
        )
        x += 40 + len(name) * 7
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class Bar:
    """One row of a ``bar_chart``: ``value`` on the chart's scale (None = no bar)."""

    label: str
    value: float | None
    text: str
    colour: str = _DAU
    tooltip: str = ""


def bar_chart(
    bars: Sequence[Bar],
    label: str,
    *,
    scale_max: float = 1.0,
    reference: float | None = None,
    width: int = 950,
    css_class: str = "bars",
) -> str:
    """Horizontal bars, one per row, with the label left and ``text`` right of each bar.

    The axis runs from 0 to ``max(scale_max, largest value)``; ``reference`` draws a dashed
    line (e.g. 100% of seats). A bar whose ``value`` is None shows only its text.
    """
    if not bars:
        return empty_chart(width, f"{label}: nothing in this window", css_class)
    label_w, text_w, row_h, top = 170, 120, 26, 8
    plot_w = width - label_w - text_w
    height = top * 2 + row_h * len(bars)
    axis_max = max([scale_max, *(bar.value or 0.0 for bar in bars)])
    parts = [open_chart(width, height, label, css_class)]
    for index, bar in enumerate(bars):
        y = top + index * row_h
        mid = _n(y + row_h / 2)
        tip = bar.tooltip or f"{bar.label}: {bar.text}"
        parts.append(f'<g class="bar-row"><title>{esc(tip)}</title>')
        parts.append(
            f'<text x="{label_w - 8}" y="{mid}" text-anchor="end" dominant-baseline="middle" '
            f'fill="{_INK}">{esc(_short(bar.label, 24))}</text>'
        )
        bar_w = 0.0
        if bar.value is not None:
            bar_w = max(bar.value / axis_max * plot_w, 1.0 if bar.value > 0 else 0.0)
            parts.append(
                f'<rect x="{label_w}" y="{_n(y + 4)}" width="{_n(bar_w)}" '
                f'height="{row_h - 8}" rx="2" fill="{esc(bar.colour)}"/>'
            )
        colour = _INK if bar.value is not None else _AXIS
        parts.append(
            f'<text x="{_n(label_w + bar_w + 6)}" y="{mid}" dominant-baseline="middle" '
            f'fill="{colour}">{esc(bar.text)}</text></g>'
        )
    if reference is not None:
        ref_x = _n(label_w + reference / axis_max * plot_w)
        parts.append(
            f'<line class="reference" x1="{ref_x}" x2="{ref_x}" y1="{top - 4}" '
            f'y2="{height - top + 4}" stroke="{_AXIS}" stroke-dasharray="3 3"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _heat_colour(share: float) -> str:
    # From near-white to deep blue; a share of 0 keeps a faint tint so the cell is visible.
    share = min(max(share, 0.0), 1.0)
    low, high = (239, 246, 255), (30, 64, 175)
    red, green, blue = (round(a + (b - a) * share) for a, b in zip(low, high, strict=True))
    return f"rgb({red},{green},{blue})"


def heatmap(cohorts: Sequence[tuple[str, int, Sequence[float]]], width: int = 950) -> str:
    """Retention heatmap: a row per ``(cohort, size, weeks)``, a cell per week after it.

    Cell colour and text give the share of the cohort active in that week (week 0 is the
    cohort's first week, always 100%).
    """
    if not cohorts:
        return empty_chart(width, "No new-user cohorts started in this window", "heatmap")
    columns = max(len(weeks) for _, _, weeks in cohorts)
    label_w, size_w, head_h, row_h = 90, 56, 22, 24
    cell_w = min(64.0, (width - label_w - size_w) / max(columns, 1))
    height = head_h + row_h * len(cohorts) + 4
    parts = [open_chart(width, height, "Weekly retention by cohort", "heatmap")]
    parts.append(
        f'<text x="{label_w - 8}" y="{head_h - 8}" text-anchor="end" fill="{_AXIS}">Cohort</text>'
        f'<text x="{label_w + size_w - 8}" y="{head_h - 8}" text-anchor="end" '
        f'fill="{_AXIS}">Users</text>'
    )
    for week in range(columns):
        head_x = _n(label_w + size_w + week * cell_w + cell_w / 2)
        parts.append(
            f'<text x="{head_x}" y="{head_h - 8}" text-anchor="middle" '
            f'fill="{_AXIS}">W{week}</text>'
        )
    for row, (cohort, size, weeks) in enumerate(cohorts):
        y = head_h + row * row_h
        mid = _n(y + row_h / 2)
        parts.append(
            f'<text x="{label_w - 8}" y="{mid}" text-anchor="end" dominant-baseline="middle" '
            f'fill="{_INK}">{esc(cohort)}</text>'
            f'<text x="{label_w + size_w - 8}" y="{mid}" text-anchor="end" '
            f'dominant-baseline="middle" fill="{_INK}">{size}</text>'
        )
        for week, share in enumerate(weeks):
            x = label_w + size_w + week * cell_w
            ink = "#ffffff" if share >= 0.55 else _INK
            parts.append(
                f'<g class="cell"><title>{esc(cohort)}, week {week}: {share:.0%} of {size} '
                f'users active</title><rect x="{_n(x + 1)}" y="{_n(y + 1)}" '
                f'width="{_n(cell_w - 2)}" height="{row_h - 2}" fill="{_heat_colour(share)}"/>'
                f'<text x="{_n(x + cell_w / 2)}" y="{mid}" text-anchor="middle" '
                f'dominant-baseline="middle" fill="{ink}">{share:.0%}</text></g>'
            )
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class Segment:
    """One part of a ``stacked_bar``."""

    label: str
    count: int
    colour: str


def stacked_bar(segments: Sequence[Segment], label: str, width: int = 950) -> str:
    """One 100% bar split into ``segments``, with a legend giving counts and shares."""
    total = sum(segment.count for segment in segments)
    if total == 0:
        return empty_chart(width, f"{label}: no users", "stacked")
    bar_h, legend_y = 30, 56
    height = legend_y + 16
    parts = [open_chart(width, height, label, "stacked")]
    x = 0.0
    for segment in segments:
        share = segment.count / total
        part_w = share * width
        if part_w > 0:
            parts.append(
                f'<g class="segment"><title>{esc(segment.label)}: {segment.count} users '
                f'({share:.0%})</title><rect x="{_n(x)}" y="4" width="{_n(part_w)}" '
                f'height="{bar_h}" fill="{esc(segment.colour)}"/></g>'
            )
            if part_w > 36:
                parts.append(
                    f'<text x="{_n(x + part_w / 2)}" y="{4 + bar_h / 2}" text-anchor="middle" '
                    f'dominant-baseline="middle" fill="#ffffff" font-weight="600">'
                    f"{share:.0%}</text>"
                )
        x += part_w
    legend_x = 0.0
    for segment in segments:
        parts.append(
            f'<rect x="{_n(legend_x)}" y="{legend_y - 10}" width="12" height="12" '
            f'fill="{esc(segment.colour)}"/><text x="{_n(legend_x + 17)}" y="{legend_y - 4}" '
            f'dominant-baseline="middle" fill="{_INK}">{esc(segment.label)}: '
            f"{segment.count}</text>"
        )
        legend_x += 34 + 8 * len(f"{segment.label}: {segment.count}")
    parts.append("</svg>")
    return "".join(parts)
