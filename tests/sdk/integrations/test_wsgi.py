"""The WSGI middleware, driven through werkzeug's test client and real threads."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from werkzeug.test import Client

import uptake
from uptake.integrations.wsgi import UptakeMiddleware
from uptake.testing import UsageEvents

Environ = dict[str, Any]


def _by_header(environ: Environ) -> tuple[str, str] | None:
    user = environ.get("HTTP_X_USER")
    return None if user is None else (user, environ.get("HTTP_X_ACCOUNT", "acme"))


def _app(environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/boom":
        uptake.track("before_boom")
        raise RuntimeError("view failed")
    if path == "/stream":

        def chunks() -> Iterator[bytes]:
            for index in range(3):
                uptake.track("chunk", index=index)
                yield b"x"

        start_response("200 OK", [("Content-Type", "text/plain")])
        return chunks()
    uptake.track("page", path=path)
    user = uptake.current_context()[0] or "-"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [user.encode()]


class BufferingClient(Client):
    """werkzeug's client, reading and closing every body (as a PEP 3333 server does)."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["buffered"] = True
        return super().open(*args, **kwargs)


@pytest.fixture
def client(usage_events: UsageEvents) -> Client:
    return BufferingClient(UptakeMiddleware(_app, identify=_by_header))


def test_a_request_runs_under_its_identity_and_leaves_none_behind(
    client: Client, usage_events: UsageEvents
) -> None:
    response = client.get("/a", headers={"X-User": "ann", "X-Account": "acme"})
    assert response.get_data() == b"ann"
    usage_events.assert_tracked("page", user="ann", account="acme", count=1)
    assert uptake.current_context() == (None, None, None)
    assert client.get("/b").get_data() == b"-"
    usage_events.assert_tracked("page", user=None, account=None, path="/b", count=1)


def test_a_visit_is_one_session_keyed_by_a_hash_of_the_session_cookie(
    client: Client, usage_events: UsageEvents
) -> None:
    client.set_cookie("sessionid", "s3cr3t-django-key")
    for path in ("/a", "/b", "/c"):
        client.get(path, headers={"X-User": "ann"})
    kinds = [event.kind for event in usage_events.events]
    assert kinds.count("session_start") == 1, kinds
    assert kinds.count("session_end") == 3
    sessions = {event.session for event in usage_events.events}
    assert len(sessions) == 1
    [session_id] = sessions
    assert session_id is not None and "s3cr3t" not in session_id
    client.set_cookie("sessionid", "another-visit")
    client.get("/a", headers={"X-User": "ann"})
    assert len({event.session for event in usage_events.events}) == 2


def test_session_cookie_names_are_configurable(usage_events: UsageEvents) -> None:
    client = BufferingClient(UptakeMiddleware(_app, identify=_by_header, session_cookies=["visit"]))
    client.set_cookie("sessionid", "ignored")
    client.get("/a", headers={"X-User": "ann"})
    assert {event.session for event in usage_events.events} == {None}
    client.set_cookie("visit", "v1")
    client.get("/a", headers={"X-User": "ann"})
    assert usage_events.events[-1].session is not None


def test_an_error_in_the_view_is_tracked_and_cleared(
    client: Client, usage_events: UsageEvents
) -> None:
    client.set_cookie("session", "flask-cookie")
    with pytest.raises(RuntimeError, match="view failed"):
        client.get("/boom", headers={"X-User": "bob", "X-Account": "globex"})
    usage_events.assert_tracked("before_boom", user="bob", account="globex", count=1)
    usage_events.assert_tracked(kind="session_end", user="bob", count=1)
    assert uptake.current_context() == (None, None, None)


def test_a_streaming_body_tracks_under_the_request_and_ends_when_closed(
    usage_events: UsageEvents,
) -> None:
    app = UptakeMiddleware(_app, identify=_by_header)
    environ = {"PATH_INFO": "/stream", "HTTP_X_USER": "cy", "HTTP_COOKIE": "session=abc"}
    body = app(environ, lambda *args: None)
    assert uptake.current_context() == (None, None, None)  # not leaked into the server
    first = next(iter(body))
    assert first == b"x"
    assert uptake.current_context() == (None, None, None)
    assert list(body) == [b"x", b"x"]
    usage_events.assert_not_tracked(kind="session_end")
    body.close()  # type: ignore[attr-defined]
    assert [e.props for e in usage_events.find("chunk", user="cy")] == [
        {"index": 0},
        {"index": 1},
        {"index": 2},
    ]
    usage_events.assert_tracked(kind="session_end", user="cy", count=1)


def test_identify_that_raises_makes_the_request_anonymous(
    usage_events: UsageEvents, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(environ: Environ) -> tuple[str, str]:
        raise KeyError("no user")

    client = BufferingClient(UptakeMiddleware(_app, identify=broken))
    assert client.get("/a").status_code == 200
    usage_events.assert_tracked("page", user=None, count=1)
    assert "identify callable raised" in caplog.text


def test_concurrent_threads_never_share_an_identity(usage_events: UsageEvents) -> None:
    users = [f"u{index}" for index in range(8)]
    barrier = threading.Barrier(len(users))

    def app(environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
        barrier.wait(timeout=10)  # every request is bound before any tracks
        uptake.track("page", expected=environ["HTTP_X_USER"])
        start_response("200 OK", [])
        return [b""]

    wrapped = UptakeMiddleware(app, identify=_by_header)

    def visit(user: str) -> None:
        for _ in range(5):
            BufferingClient(wrapped).get("/", headers={"X-User": user, "X-Account": f"acct-{user}"})

    threads = [threading.Thread(target=visit, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pages = usage_events.find("page")
    assert len(pages) == 5 * len(users)
    for event in pages:
        assert event.props is not None
        assert event.user == event.props["expected"]
        assert event.account == f"acct-{event.user}"
