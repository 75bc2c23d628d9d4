"""The HTML report: self-contained, every section present, every user string escaped."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.cli._reports import empty_report, rename
from uptake_cli.render_html import render_html

_FIXED = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


class _Page(HTMLParser):
    """Collects tags, attributes and text of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _page(markup: str) -> _Page:
    page = _Page()
    page.feed(markup)
    page.close()
    return page


def _svgs(markup: str) -> list[ET.Element]:
    return [ET.fromstring(match) for match in re.findall(r"<svg\b.*?</svg>", markup, re.S)]


def test_page_has_every_section_and_chart(sample_report: dict[str, Any]) -> None:
    markup = render_html(sample_report, generated=_FIXED)
    page = _page(markup)
    ids = {attrs.get("id") for _, attrs in page.tags}
    assert {"trend", "features", "utilization", "retention", "segments", "accounts"} <= ids
    assert "attention" in ids
    charts = _svgs(markup)
    classes = {chart.get("class", "") for chart in charts}
    for kind in ("trend", "bars", "utilization", "heatmap", "stacked"):
        assert any(kind in css for css in classes), kind
    assert not any("empty" in css for css in classes)
    text = " ".join(page.text)
    for account in sample_report["accounts"]:
        assert account["account"] in text
    assert "2.4.0" in text


def test_page_is_self_contained_and_printable(sample_report: dict[str, Any]) -> None:
    markup = render_html(sample_report, generated=_FIXED)
    lowered = markup.lower()
    for forbidden in ("<script", "<link", "<img", "<iframe", "@import", "url("):
        assert forbidden not in lowered
    urls = set(re.findall(r"https?://[^\s\"'<>]+", markup))
    assert urls == {"http://www.w3.org/2000/svg"}  # the SVG namespace, never fetched
    assert '<meta charset="utf-8">' in markup
    assert "@media print" in markup


def test_output_is_reproducible(sample_report: dict[str, Any]) -> None:
    first = render_html(sample_report, generated=_FIXED)
    assert render_html(sample_report, generated=_FIXED) == first
    assert "2026-11-23 12:00 UTC" in first


def test_health_colours_follow_the_band(sample_report: dict[str, Any]) -> None:
    markup = render_html(sample_report, generated=_FIXED)
    [chart] = [c for c in _svgs(markup) if "utilization" in c.get("class", "")]
    fills = {rect.get("fill") for rect in chart.iter("{http://www.w3.org/2000/svg}rect")}
    assert fills == {"#15803d", "#ca8a04", "#b91c1c"}  # green, yellow, red


def test_empty_window_still_renders_a_full_page() -> None:
    markup = render_html(empty_report(), generated=_FIXED)
    page = _page(markup)
    assert "No accounts in this window." in " ".join(page.text)
    assert all(chart is not None for chart in _svgs(markup))


@pytest.fixture(scope="module")
def plain_tags(_sample_report: dict[str, Any]) -> list[str]:
    """The tags of the sample report's page with a harmless name (rendered once)."""
    return [
        tag for tag, _ in _page(render_html(rename(_sample_report, "x"), generated=_FIXED)).tags
    ]


@given(name=st.text(min_size=1, max_size=30))
def test_every_user_string_is_escaped(
    sample_report: dict[str, Any], plain_tags: list[str], name: str
) -> None:
    report = rename(sample_report, name)
    markup = render_html(report, generated=_FIXED)
    page = _page(markup)
    # The page keeps its structure: the hostile name adds no tags of its own.
    assert [tag for tag, _ in page.tags] == plain_tags
    for chart in _svgs(markup):
        assert chart.tag == "{http://www.w3.org/2000/svg}svg"
