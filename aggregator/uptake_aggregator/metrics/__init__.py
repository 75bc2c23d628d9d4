"""The metrics engine: DESIGN §5 metrics over the rollups, as the §6 report.

Entry point: ``build_report(db_path, filters, today=None)``; see docs/metrics.md for the
definitions as implemented.
"""

from __future__ import annotations

from uptake_aggregator.metrics.report import build_report

__all__ = ["build_report"]
