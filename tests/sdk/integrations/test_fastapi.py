"""FastAPI: the ASGI middleware and the route dependency, through FastAPI's test client."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient

import uptake
from uptake.integrations.fastapi import UptakeMiddleware, track_feature
from uptake.testing import UsageEvents


def _identify(scope: dict[str, Any]) -> tuple[str, str] | None:
    user = dict(scope["headers"]).get(b"x-user")
    return None if user is None else (user.decode(), "acme")


def _app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(UptakeMiddleware, identify=_identify)

    @app.post("/export", dependencies=[Depends(track_feature("export_csv", format="csv"))])
    async def export() -> dict[str, str | None]:
        return {"user": uptake.current_context()[0]}

    @app.get("/sync")
    def sync_view(request: Request) -> dict[str, str | None]:
        uptake.track("sync_view")  # runs in a worker thread: the context follows it
        return {"user": uptake.current_context()[0]}

    return app


def test_the_dependency_tracks_for_the_request_user(usage_events: UsageEvents) -> None:
    client = TestClient(_app())
    assert client.post("/export", headers={"x-user": "ann"}).json() == {"user": "ann"}
    assert client.post("/export").json() == {"user": None}
    usage_events.assert_tracked("export_csv", user="ann", account="acme", format="csv", count=1)
    usage_events.assert_tracked("export_csv", user=None, count=1)


def test_sync_routes_in_the_threadpool_see_the_identity(usage_events: UsageEvents) -> None:
    client = TestClient(_app())
    assert client.get("/sync", headers={"x-user": "bob"}).json() == {"user": "bob"}
    usage_events.assert_tracked("sync_view", user="bob", count=1)
