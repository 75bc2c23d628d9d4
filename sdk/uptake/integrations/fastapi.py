"""FastAPI and Starlette: the ASGI middleware, plus ``track_feature()`` for routes.

    from uptake.integrations.fastapi import UptakeMiddleware, track_feature
    app.add_middleware(UptakeMiddleware, identify=lambda scope: ...)

    @app.post("/export", dependencies=[Depends(track_feature("export_csv"))])
    async def export() -> dict[str, str]: ...

The dependency is a coroutine function, so FastAPI runs it in the request's task (a plain
function would run in a worker thread), under the identity the middleware bound.
Nothing here imports FastAPI.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import uptake
from uptake.integrations.asgi import UptakeMiddleware

__all__ = ["UptakeMiddleware", "track_feature"]


def track_feature(feature: str, **props: Any) -> Callable[[], Awaitable[None]]:
    """A route dependency recording ``feature`` (with ``props``) for each request."""

    async def tracked() -> None:
        uptake.track(feature, **props)

    tracked.__name__ = f"track_{feature}"
    return tracked
