"""The Django example site records what its README promises (checked with `usage_events`)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.django_site import configure_django

PROJECT = Path(__file__).resolve().parents[2] / "examples" / "django_project"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    configure_django(tmp_path_factory.mktemp("django"))
    sys.path.insert(0, str(PROJECT))
    from django.contrib.auth.models import User
    from django.test import override_settings

    for name in ("ann", "bob"):
        domain = {"ann": "acme", "bob": "globex"}[name]
        if not User.objects.filter(username=name).exists():
            User.objects.create_user(name, f"{name}@{domain}.example", "pw")
    try:
        with override_settings(
            ROOT_URLCONF="reports_site.urls", UPTAKE_ACCOUNT="reports_site.accounts.account_of"
        ):
            yield
    finally:
        sys.path.remove(str(PROJECT))


def _log_in(username: str) -> Any:
    from django.test import Client

    client = Client()
    response = client.post("/login", {"username": username, "password": "pw"})
    assert response.status_code == 200, response.content
    return client


def _pk(username: str) -> str:
    from django.contrib.auth.models import User

    return str(User.objects.get(username=username).pk)


def test_a_visit_is_one_session_of_its_user(site: None, usage_events: Any) -> None:
    client = _log_in("ann")
    ann = _pk("ann")
    usage_events.assert_tracked(kind="login", user=ann, account="acme", count=1)
    assert client.get("/reports").status_code == 200
    assert client.post("/reports/export?format=xlsx").status_code == 200
    client.post("/logout")
    usage_events.assert_tracked("list_reports", user=ann, account="acme", count=1)
    usage_events.assert_tracked("export_report", user=ann, format="xlsx", count=1)
    usage_events.assert_tracked(kind="logout", user=ann, account="acme", count=1)
    visit = [event for event in usage_events.events if event.kind != "login"]
    assert len({event.session for event in visit}) == 1 and visit[0].session is not None


def test_anonymous_and_refused_requests_track_nothing(site: None, usage_events: Any) -> None:
    from django.test import Client

    client = Client()
    assert client.get("/reports").status_code == 401
    assert client.post("/login", {"username": "ann", "password": "no"}).status_code == 401
    assert usage_events.events == []


def test_two_users_never_share_an_identity(site: None, usage_events: Any) -> None:
    ann, bob = _log_in("ann"), _log_in("bob")
    for _ in range(3):
        ann.get("/reports")
        bob.post("/reports/export?format=csv")
    features = [event for event in usage_events.events if event.kind == "feature"]
    assert {(e.name, e.user, e.account) for e in features} == {
        ("list_reports", _pk("ann"), "acme"),
        ("export_report", _pk("bob"), "globex"),
    }
