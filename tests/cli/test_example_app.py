"""The Flask example app records what its README promises (checked with `usage_events`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask.testing import FlaskClient

APP_PATH = Path(__file__).resolve().parents[2] / "examples" / "flask_app" / "app.py"


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("uptake_flask_example", APP_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def client(example: ModuleType, usage_events: Any) -> FlaskClient:
    # Requesting usage_events first: the app must record into the fixture's sink.
    app = example.create_app({"TESTING": True})
    return app.test_client()


def _log_in(client: FlaskClient, user: str, account: str) -> None:
    response = client.post("/login", data={"user": user, "account": account})
    assert response.status_code == 200, response.json


def test_login_and_logout_are_recorded(client: FlaskClient, usage_events: Any) -> None:
    _log_in(client, "ann", "acme")
    [login] = [event for event in usage_events.events if event.kind == "login"]
    assert (login.user, login.account, login.props) == ("ann", "acme", {"method": "password"})
    client.post("/logout")
    usage_events.assert_tracked(kind="logout", user="ann", account="acme", count=1)


def test_features_are_tracked_for_the_logged_in_user(
    client: FlaskClient, usage_events: Any
) -> None:
    _log_in(client, "ann", "acme")
    assert client.get("/reports").status_code == 200
    assert client.post("/reports/export?format=xlsx").status_code == 200
    usage_events.assert_tracked("list_reports", user="ann")
    usage_events.assert_tracked("export_report", user="ann")
    [export] = [event for event in usage_events.events if event.name == "export_report"]
    assert export.account == "acme" and export.props == {"format": "xlsx"}


def test_a_visit_is_one_session(client: FlaskClient, usage_events: Any) -> None:
    _log_in(client, "ann", "acme")
    client.get("/reports")
    client.post("/reports/export")
    client.post("/logout")
    # login() comes before the visit's first request (the daemon counts it in the
    # session, docs/metrics.md "One visit, one session"); the rest carries its id.
    visit = [event for event in usage_events.events if event.kind != "login"]
    sessions = {event.session for event in visit}
    assert len(sessions) == 1 and None not in sessions
    kinds = [event.kind for event in visit]
    assert kinds.count("session_start") == 1
    assert kinds[0] == "session_start" and "logout" in kinds


def test_anonymous_and_refused_requests_track_nothing(
    client: FlaskClient, usage_events: Any
) -> None:
    assert client.get("/reports").status_code == 401
    assert client.post("/login", data={"user": "ann"}).status_code == 400
    usage_events.assert_not_tracked("list_reports")
    assert usage_events.events == []
    _log_in(client, "ann", "acme")
    assert client.post("/reports/export?format=doc").status_code == 400
    usage_events.assert_not_tracked("export_report")


def test_two_users_never_share_an_identity(example: ModuleType, usage_events: Any) -> None:
    app = example.create_app({"TESTING": True})
    ann, bob = app.test_client(), app.test_client()
    _log_in(ann, "ann", "acme")
    _log_in(bob, "bob", "globex")
    for _ in range(3):
        ann.get("/reports")
        bob.post("/reports/export?format=csv")
    features = [event for event in usage_events.events if event.kind == "feature"]
    assert {(e.name, e.user, e.account) for e in features} == {
        ("list_reports", "ann", "acme"),
        ("export_report", "bob", "globex"),
    }
    sessions_of = {(e.user, e.session) for e in usage_events.events if e.kind != "login"}
    assert len(sessions_of) == 2  # one visit each, never crossed
