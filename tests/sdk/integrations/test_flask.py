"""The Flask extension, through Flask's test client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, Request, Response, session, stream_with_context

import uptake
from uptake.integrations.flask import Uptake
from uptake.testing import UsageEvents


def _identify(request: Request) -> tuple[str, str] | None:
    if "user" not in session:
        return None
    return (session["user"], session["account"])


def _app(extension: Uptake | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test-only", TESTING=True)

    @app.post("/login")
    def login() -> dict[str, Any]:
        session.update(user="ann", account="acme")
        uptake.login(user="ann", account="acme")
        return {}

    @app.post("/logout")
    def logout() -> dict[str, Any]:
        uptake.logout()
        session.clear()
        return {}

    @app.get("/page")
    def page() -> str:
        uptake.track("page")
        return uptake.current_context()[0] or "-"

    @app.get("/boom")
    def boom() -> str:
        uptake.track("before_boom")
        raise RuntimeError("view failed")

    @app.get("/stream")
    def stream() -> Response:
        def chunks() -> Iterator[str]:
            for index in range(2):
                uptake.track("chunk", index=index)
                yield "x"

        return Response(stream_with_context(chunks()))

    if extension is None:
        Uptake(app, identify=_identify)
    else:
        extension.init_app(app)
    return app


@pytest.fixture
def app(usage_events: UsageEvents) -> Flask:
    return _app()


def test_a_visit_from_login_to_logout_is_one_session(app: Flask, usage_events: UsageEvents) -> None:
    client = app.test_client()
    assert client.get("/page").text == "-"
    client.post("/login")
    assert client.get("/page").text == "ann"
    client.get("/page")
    client.post("/logout")
    client.get("/page")
    usage_events.assert_tracked(kind="login", user="ann", account="acme", count=1)
    usage_events.assert_tracked(kind="logout", user="ann", count=1)
    ann = usage_events.find("page", user="ann", account="acme")
    assert len(ann) == 2
    assert len({event.session for event in ann}) == 1 and ann[0].session is not None
    usage_events.assert_tracked(kind="session_start", user="ann", count=1)
    assert len(usage_events.find("page", user=None)) == 2
    assert uptake.current_context() == (None, None, None)


def test_errors_and_streams_are_tracked_and_cleared(app: Flask, usage_events: UsageEvents) -> None:
    client = app.test_client()
    client.post("/login")
    with pytest.raises(RuntimeError, match="view failed"):  # TESTING propagates it
        client.get("/boom")
    usage_events.assert_tracked("before_boom", user="ann", count=1)
    assert client.get("/stream").text == "xx"
    assert len(usage_events.find("chunk", user="ann")) == 2
    assert uptake.current_context() == (None, None, None)


def test_the_init_app_pattern(usage_events: UsageEvents) -> None:
    extension = Uptake(identify=_identify)
    app = _app(extension)
    assert app.extensions["uptake"] is extension
    client = app.test_client()
    client.post("/login")
    client.get("/page")
    usage_events.assert_tracked("page", user="ann", count=1)
