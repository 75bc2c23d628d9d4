"""Apps the end-to-end tests serve with real servers (gunicorn, uvicorn).

Both answer the same routes under ``UptakeMiddleware``: ``X-User`` names the user (its
account is ``acct-<user>``), ``/page`` tracks ``page``, ``/boom`` tracks ``before_boom``
then fails, ``/stream`` tracks one ``chunk`` per streamed part. The body of ``/page``
says whom the server thought it served.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, MutableMapping
from typing import Any

import uptake
from uptake.integrations.asgi import UptakeMiddleware as AsgiMiddleware
from uptake.integrations.wsgi import UptakeMiddleware as WsgiMiddleware

__all__ = ["asgi_app", "wsgi_app"]

CHUNKS = 3


def _from_environ(environ: dict[str, Any]) -> tuple[str, str] | None:
    user = environ.get("HTTP_X_USER")
    return None if user is None else (user, f"acct-{user}")


def _from_scope(scope: MutableMapping[str, Any]) -> tuple[str, str] | None:
    user = dict(scope["headers"]).get(b"x-user")
    return None if user is None else (user.decode(), f"acct-{user.decode()}")


def _plain_wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/boom":
        uptake.track("before_boom")
        raise RuntimeError("the view failed")
    start_response("200 OK", [("Content-Type", "text/plain")])
    if path == "/stream":

        def chunks() -> Iterator[bytes]:
            for index in range(CHUNKS):
                uptake.track("chunk", index=index)
                yield b"x"

        return chunks()
    uptake.track("page")
    return [(uptake.current_context()[0] or "-").encode()]


wsgi_app = WsgiMiddleware(_plain_wsgi, identify=_from_environ)


async def _plain_asgi(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Any],
    send: Callable[[MutableMapping[str, Any]], Any],
) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path = scope["path"]
    await asyncio.sleep(0)  # interleave the tasks of concurrent requests
    if path == "/boom":
        uptake.track("before_boom")
        raise RuntimeError("the view failed")
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if path == "/stream":
        async for chunk in _chunks():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    uptake.track("page")
    body = (uptake.current_context()[0] or "-").encode()
    await send({"type": "http.response.body", "body": body})


async def _chunks() -> AsyncIterator[bytes]:
    for index in range(CHUNKS):
        uptake.track("chunk", index=index)
        await asyncio.sleep(0)
        yield b"x"


asgi_app = AsgiMiddleware(_plain_asgi, identify=_from_scope)
