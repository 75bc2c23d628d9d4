"""The metrics engine: the usage report's figures (docs/metrics.md), backend-neutral.

Metric definitions and report assembly over plain data a store's ``ReportSource`` hands
back (``store.reports``); no SQL here. Entry point: ``build_report(db, filters,
today=None)``.
"""

from __future__ import annotations

from uptake_aggregator.metrics.report import build_report

__all__ = ["build_report"]
