"""The hand-written SVG charts: well-formed, scaled, escaped, and honest about empty data."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from uptake_cli import svg

_NS = "{http://www.w3.org/2000/svg}"


def _parse(markup: str) -> ET.Element:
    return ET.fromstring(markup)


def _days(count: int) -> list[str]:
    return [f"2026-10-{day:02d}" for day in range(1, count + 1)]


def test_trend_has_a_point_per_day_levels_and_release_marker() -> None:
    days = _days(30)
    dau = [day % 7 + 1 for day in range(30)]
    root = _parse(svg.trend_chart(days, dau, 9, 12, releases=[("2026-10-15", "2.4.0")]))
    assert len(root.findall(f".//{_NS}circle")) == 30
    paths = {path.get("class"): path.get("d") for path in root.iter(f"{_NS}path")}
    assert {"dau", "dau-mean", "dau-area"} <= set(paths)
    assert paths["dau"] is not None and paths["dau"].count("L") == 29
    groups = {group.get("class") for group in root.iter(f"{_NS}g")}
    assert {"release", "wau", "mau"} <= groups
    texts = " ".join(text.text or "" for text in root.iter(f"{_NS}text"))
    assert "2.4.0" in texts and "WAU 9" in texts and "MAU 12" in texts


def test_trend_skips_releases_outside_the_window() -> None:
    root = _parse(svg.trend_chart(_days(5), [1] * 5, 1, 1, releases=[("2026-09-01", "old")]))
    assert not [g for g in root.iter(f"{_NS}g") if g.get("class") == "release"]


def test_trend_points_stay_inside_the_plot() -> None:
    root = _parse(svg.trend_chart(_days(3), [0, 50, 7], 60, 61, width=500, height=200))
    for circle in root.iter(f"{_NS}circle"):
        assert 0 <= float(circle.get("cx", "-1")) <= 500
        assert 0 <= float(circle.get("cy", "-1")) <= 200


def test_single_day_trend_renders() -> None:
    root = _parse(svg.trend_chart(["2026-10-01"], [3], 3, 3))
    assert len(root.findall(f".//{_NS}circle")) == 1


def test_bars_scale_to_the_largest_value_and_draw_the_reference() -> None:
    bars = [svg.Bar("a", 0.5, "50%"), svg.Bar("b", 1.5, "150%"), svg.Bar("c", None, "unknown")]
    root = _parse(svg.bar_chart(bars, "Utilization", reference=1.0))
    rects = root.findall(f".//{_NS}rect")
    assert len(rects) == 2  # no bar for the unknown value
    widths = [float(rect.get("width", "0")) for rect in rects]
    assert widths[1] == 3 * widths[0]
    reference = [line for line in root.iter(f"{_NS}line") if line.get("class") == "reference"]
    assert len(reference) == 1
    assert "unknown" in " ".join(text.text or "" for text in root.iter(f"{_NS}text"))


def test_heatmap_has_a_cell_per_cohort_week() -> None:
    cohorts = [("2026-W40", 4, [1.0, 0.5, 0.25]), ("2026-W41", 2, [1.0, 0.0])]
    root = _parse(svg.heatmap(cohorts))
    cells = [g for g in root.iter(f"{_NS}g") if g.get("class") == "cell"]
    assert len(cells) == 5
    texts = [text.text for text in root.iter(f"{_NS}text")]
    assert "25%" in texts and "0%" in texts


def test_stacked_bar_parts_fill_the_width() -> None:
    parts = [svg.Segment("daily", 1, "#000"), svg.Segment("inactive", 3, "#999")]
    root = _parse(svg.stacked_bar(parts, "Segments", width=400))
    widths = [float(rect.get("width", "0")) for rect in root.findall(f"./{_NS}g/{_NS}rect")]
    assert widths == [100.0, 300.0]


def test_empty_data_says_so_instead_of_drawing_nothing() -> None:
    for markup in (
        svg.trend_chart([], [], 0, 0),
        svg.bar_chart([], "Features"),
        svg.heatmap([]),
        svg.stacked_bar([svg.Segment("daily", 0, "#000")], "Segments"),
    ):
        root = _parse(markup)
        assert "empty" in (root.get("class") or "")
        assert any(text.text for text in root.iter(f"{_NS}text"))


@given(label=st.text(max_size=40))
def test_any_label_is_escaped_into_well_formed_svg(label: str) -> None:
    markup = svg.bar_chart([svg.Bar(label, 0.3, label, tooltip=label)], label)
    root = _parse(markup)  # raises on broken markup or stray control characters
    assert root.tag == f"{_NS}svg"
    assert "<script" not in markup.lower()


def test_equal_wau_and_mau_labels_do_not_overlap() -> None:
    root = _parse(svg.trend_chart(_days(30), [5] * 30, 20, 20))
    labels = {
        group.get("class"): float(group.findall(f"{_NS}text")[0].get("y", "0"))
        for group in root.iter(f"{_NS}g")
        if group.get("class") in ("wau", "mau")
    }
    assert abs(labels["wau"] - labels["mau"]) >= 14


@given(top=st.integers(min_value=0, max_value=10**7))
def test_y_axis_has_round_steps_and_covers_the_data(top: int) -> None:
    root = _parse(svg.trend_chart(["2026-10-01", "2026-10-02"], [0, top], 0, top))
    ticks = [
        int(text.text.replace(",", ""))
        for text in root.iter(f"{_NS}text")
        if text.get("text-anchor") == "end" and text.text and text.text.replace(",", "").isdigit()
    ]
    assert ticks[0] == 0 and ticks[-1] >= top
    steps = {b - a for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1
    [step] = steps
    assert 2 <= len(ticks) <= 7
    assert str(step).rstrip("0") in ("1", "2", "25", "5")
