"""Report variants for renderer tests: empty windows, hostile names, odd values."""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["empty_report", "rename"]


def empty_report(since: str = "2026-11-01", until: str = "2026-11-02") -> dict[str, Any]:
    """A valid §6 report for a database with nothing in the window."""
    return {
        "window": {"since": since, "until": until},
        "product": {
            "dau": [{"day": since, "users": 0}],
            "wau": 0,
            "mau": 0,
            "stickiness": 0.0,
            "usage_rate": 0.0,
            "active_users": 0,
            "known_users": 0,
            "logins": 0,
            "sessions": 0,
            "avg_session_s": None,
            "median_session_s": None,
        },
        "features": [],
        "accounts": [],
        "users": [],
        "retention": [],
        "releases": [],
    }


def rename(report: dict[str, Any], name: str) -> dict[str, Any]:
    """Return a copy of ``report`` with ``name`` woven into every user-supplied string.

    Accounts, users, features and release versions keep distinct values (a suffix), so
    renderers that group or sort by them still see the same structure.
    """
    renamed = copy.deepcopy(report)
    accounts = {row["account"]: f"{name}a{i}" for i, row in enumerate(renamed["accounts"])}
    for row in renamed["accounts"]:
        row["account"] = accounts[row["account"]]
    for i, row in enumerate(renamed["users"]):
        row["user"] = f"{name}u{i}"
        row["account"] = accounts.get(row["account"], row["account"])
    for i, row in enumerate(renamed["features"]):
        row["name"] = f"{name}f{i}"
    for i, row in enumerate(renamed["releases"]):
        row["version"] = f"{name}v{i}"
    return renamed
