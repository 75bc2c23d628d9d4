"""The sample report the renderers are tested against is a faithful §6 report."""

from __future__ import annotations

from typing import Any

import msgspec

from tests.cli.make_sample_report import build_sample
from uptake_aggregator.metrics.report_schema import Report as UsageReport


def test_sample_matches_the_section_6_schema(sample_report: dict[str, Any]) -> None:
    report = msgspec.convert(sample_report, UsageReport)
    assert len(report.product.dau) == 60
    assert len(report.accounts) == 6
    assert len(report.users) == 30
    assert len(report.features) == 10
    assert report.releases


def test_sample_exercises_every_null_section_6_allows(sample_report: dict[str, Any]) -> None:
    accounts = sample_report["accounts"]
    assert any(account["seats"] is None for account in accounts)
    assert any(account["utilization"] is None for account in accounts)
    assert any(account["growth"] is None for account in accounts)
    assert any(user["avg_session_s"] is None for user in sample_report["users"])
    assert {user["segment"] for user in sample_report["users"]} == {
        "daily",
        "frequent",
        "occasional",
        "inactive",
    }
    assert {flag for account in accounts for flag in account["flags"]} == {
        "churn_risk",
        "upsell",
        "idle_seats",
    }


def test_sample_file_is_what_the_generator_writes(sample_report: dict[str, Any]) -> None:
    assert build_sample() == sample_report
