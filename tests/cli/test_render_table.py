"""Terminal tables: every block is there, nulls read as a dash, any width works."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console

from tests.cli._reports import empty_report
from uptake_cli.render_table import print_report


def _render(report: dict[str, Any], width: int = 120, colour: bool = False) -> str:
    console = Console(
        width=width, force_terminal=colour, color_system="truecolor" if colour else None
    )
    with console.capture() as capture:
        print_report(report, console)
    return capture.get()


def test_tables_show_summary_features_accounts_and_attention(
    sample_report: dict[str, Any],
) -> None:
    text = _render(sample_report)
    for heading in (
        "Product usage",
        "Top features by adoption",
        "Accounts (least healthy first)",
        "Users needing attention",
    ):
        assert heading in text
    product = sample_report["product"]
    assert f"{product['stickiness'] * 100:.1f}%" in text
    assert "2.4.0" in text  # the release
    for feature in sample_report["features"]:
        assert feature["name"] in text
    for account in sample_report["accounts"]:
        assert account["account"] in text
        for flag in account["flags"]:
            assert flag in text


def test_unknown_seats_show_as_a_dash(sample_report: dict[str, Any]) -> None:
    text = _render(sample_report)
    accounts = text[text.index("Accounts (least") : text.index("Users needing attention")]
    [row] = [line for line in accounts.splitlines() if "Fox & Hound" in line]
    assert row.split()[4] == "—"  # seats, after the three words of the name


def test_inactive_seats_are_listed_first(sample_report: dict[str, Any]) -> None:
    text = _render(sample_report)
    attention = text[text.index("Users needing attention") :]
    inactive = [u["user"] for u in sample_report["users"] if u["segment"] == "inactive"]
    assert inactive
    for user in inactive:
        assert f" {user} " in attention
    assert "inactive seat" in attention.splitlines()[4]


def test_health_band_is_coloured_on_a_terminal(sample_report: dict[str, Any]) -> None:
    text = _render(sample_report, colour=True)
    assert "\x1b[" in text  # ANSI styles present
    assert "\x1b[" not in _render(sample_report, colour=False)


@pytest.mark.parametrize("width", [60, 80, 200])
def test_tables_render_at_any_width(sample_report: dict[str, Any], width: int) -> None:
    text = _render(sample_report, width=width)
    assert all(len(line) <= width for line in text.splitlines())


def test_empty_window_renders_placeholders() -> None:
    text = _render(empty_report())
    assert "No feature events in this window." in text
    assert "No accounts in this window." in text
    assert "Nobody: every known user was active" in text


def test_engagement_tables(sample_report: dict[str, Any]) -> None:
    text = _render(sample_report)
    engagement = text[text.index("Lifecycle by ISO week") :]
    for heading in ("Release impact", "Activation (new users", "Power users"):
        assert heading in engagement
    for week in sample_report["lifecycle"]:
        assert week["week"] in engagement
    assert "export_csv -67%" in " ".join(engagement.split()).replace("5.5 → 1.8 ", "")
    assert "66.7%" in engagement  # the activation rate
    sample_report["activation"] = None
    assert "pass --core NAME" in _render(sample_report)
