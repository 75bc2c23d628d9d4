"""The FastAPI example app records what its README promises (checked with `usage_events`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi.testclient import TestClient

APP_PATH = Path(__file__).resolve().parents[2] / "examples" / "fastapi_app" / "app.py"


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("uptake_fastapi_example", APP_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _log_in(example: ModuleType, user: str, account: str) -> TestClient:
    client = TestClient(example.create_app())
    response = client.post("/login", json={"user": user, "account": account})
    assert response.status_code == 200, response.text
    return client


def test_a_visit_is_one_session_of_its_user(example: ModuleType, usage_events: Any) -> None:
    client = _log_in(example, "ann", "acme")
    assert client.get("/reports").status_code == 200
    assert client.post("/reports/export?format=xlsx").status_code == 200
    client.post("/logout")
    usage_events.assert_tracked(kind="login", user="ann", account="acme", count=1)
    usage_events.assert_tracked("list_reports", user="ann", account="acme", count=1)
    usage_events.assert_tracked("export_report", user="ann", format="xlsx", count=1)
    usage_events.assert_tracked(kind="logout", user="ann", count=1)
    visit = [event for event in usage_events.events if event.kind != "login"]
    assert len({event.session for event in visit}) == 1 and visit[0].session is not None
    assert [event.kind for event in visit].count("session_start") == 1


def test_anonymous_and_refused_requests_track_nothing(
    example: ModuleType, usage_events: Any
) -> None:
    client = TestClient(example.create_app())
    assert client.get("/reports").status_code == 401
    assert client.post("/reports/export").status_code == 401
    assert usage_events.events == []


def test_two_users_never_share_an_identity(example: ModuleType, usage_events: Any) -> None:
    ann, bob = _log_in(example, "ann", "acme"), _log_in(example, "bob", "globex")
    for _ in range(3):
        ann.get("/reports")
        bob.post("/reports/export?format=csv")
    features = [event for event in usage_events.events if event.kind == "feature"]
    assert {(e.name, e.user, e.account) for e in features} == {
        ("list_reports", "ann", "acme"),
        ("export_report", "bob", "globex"),
    }
