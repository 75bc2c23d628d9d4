"""The ASGI middleware, driven through Starlette's and httpx's clients and asyncio tasks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

import uptake
from uptake.integrations.asgi import UptakeMiddleware
from uptake.testing import UsageEvents

Scope = dict[str, Any]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the concurrency test gathers asyncio tasks


def _by_header(scope: Scope) -> tuple[str, str] | None:
    headers = dict(scope["headers"])
    user = headers.get(b"x-user")
    return None if user is None else (user.decode(), headers.get(b"x-account", b"acme").decode())


async def _page(request: Request) -> PlainTextResponse:
    await asyncio.sleep(0)  # let other requests' tasks run in between
    uptake.track("page", expected=request.headers.get("x-user", "-"))
    return PlainTextResponse(uptake.current_context()[0] or "-")


async def _boom(request: Request) -> PlainTextResponse:
    uptake.track("before_boom")
    raise RuntimeError("view failed")


async def _stream(request: Request) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for index in range(3):
            uptake.track("chunk", index=index)
            yield b"x"

    return StreamingResponse(chunks())


async def _login(request: Request) -> JSONResponse:
    request.session["user"] = request.query_params["user"]
    return JSONResponse({"ok": True})


async def _socket(websocket: WebSocket) -> None:
    await websocket.accept()
    async for message in websocket.iter_text():
        uptake.track("message", text=message)
        await websocket.send_text(uptake.current_context()[0] or "-")


startups: list[tuple[str | None, str | None, str | None]] = []


def _app(identify: Any = _by_header) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        startups.append(uptake.current_context())
        yield

    app = Starlette(
        routes=[
            Route("/", _page),
            Route("/boom", _boom),
            Route("/stream", _stream),
            Route("/login", _login, methods=["POST"]),
            WebSocketRoute("/ws", _socket),
        ],
        lifespan=lifespan,
    )
    app.add_middleware(UptakeMiddleware, identify=identify)
    return app


def test_http_requests_bind_the_identity_and_clear_it(usage_events: UsageEvents) -> None:
    with TestClient(_app()) as client:
        assert client.get("/", headers={"x-user": "ann"}).text == "ann"
        assert client.get("/").text == "-"
    usage_events.assert_tracked("page", user="ann", account="acme", count=1)
    usage_events.assert_tracked("page", user=None, count=1)
    assert startups[-1] == (None, None, None)  # lifespan passed through, untouched


def test_a_visit_is_one_session_keyed_by_the_cookie(usage_events: UsageEvents) -> None:
    client = TestClient(_app())
    client.cookies.set("session", "opaque-cookie-value")
    for _ in range(3):
        client.get("/", headers={"x-user": "ann"})
    kinds = [event.kind for event in usage_events.events]
    assert (kinds.count("session_start"), kinds.count("session_end")) == (1, 3)
    [session_id] = {event.session for event in usage_events.events}
    assert session_id is not None and "opaque" not in session_id


def test_starlette_sessions_keep_the_visit_id_although_their_cookie_changes(
    usage_events: UsageEvents,
) -> None:
    app = _app(identify=lambda scope: (scope["session"].get("user"), None))
    app.add_middleware(SessionMiddleware, secret_key="test-only")  # outside uptake's
    client = TestClient(app)
    client.post("/login?user=ann")
    for _ in range(3):
        client.get("/")
    pages = usage_events.find("page", user="ann")
    assert len(pages) == 3
    assert len({event.session for event in pages}) == 1 and pages[0].session is not None


def test_errors_and_streaming_bodies_are_tracked_and_cleared(usage_events: UsageEvents) -> None:
    client = TestClient(_app(), raise_server_exceptions=False)
    client.cookies.set("session", "c")
    assert client.get("/boom", headers={"x-user": "bob"}).status_code == 500
    usage_events.assert_tracked("before_boom", user="bob", count=1)
    assert client.get("/stream", headers={"x-user": "cy"}).text == "xxx"
    assert len(usage_events.find("chunk", user="cy")) == 3
    usage_events.assert_tracked(kind="session_end", user="bob", count=1)
    usage_events.assert_tracked(kind="session_end", user="cy", count=1)
    assert uptake.current_context() == (None, None, None)


def test_a_websocket_connection_runs_under_its_identity(usage_events: UsageEvents) -> None:
    client = TestClient(_app())
    with client.websocket_connect("/ws", headers={"x-user": "dee"}) as socket:
        socket.send_text("hi")
        assert socket.receive_text() == "dee"
    with client.websocket_connect("/ws") as socket:
        socket.send_text("anon")
        assert socket.receive_text() == "-"
    usage_events.assert_tracked("message", user="dee", text="hi", count=1)
    usage_events.assert_tracked("message", user=None, text="anon", count=1)


@pytest.mark.anyio
async def test_concurrent_asyncio_tasks_never_share_an_identity(
    usage_events: UsageEvents,
) -> None:
    async def identify(scope: Scope) -> tuple[str, str] | None:
        await asyncio.sleep(0)  # an async lookup, interleaved with the others
        return _by_header(scope)

    transport = httpx.ASGITransport(app=_app(identify=identify))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        users = [f"u{index}" for index in range(20)]
        answers = await asyncio.gather(
            *(
                client.get("/", headers={"x-user": user, "x-account": f"a-{user}"})
                for user in users * 3
            )
        )
    assert [answer.text for answer in answers] == users * 3
    pages = usage_events.find("page")
    assert len(pages) == 60
    for event in pages:
        assert event.props is not None and event.user == event.props["expected"]
        assert event.account == f"a-{event.user}"
    assert uptake.current_context() == (None, None, None)
