"""``UptakeMiddleware``: any ASGI app's requests run under the identity ``identify`` gives.

    from uptake.integrations.asgi import UptakeMiddleware
    app = UptakeMiddleware(app, identify=lambda scope: (scope["user"].id, None))

Starlette / FastAPI: ``app.add_middleware(UptakeMiddleware, identify=fn)``. ``identify``
gets the connection's scope and may be a coroutine function (to look a user up).

HTTP requests and websocket connections bind the identity in the task serving them and
put the previous context back when the app returns or raises; everything the app sends
(streaming bodies included) and every task it creates meanwhile runs under that identity.
Other scope types pass straight through, ``lifespan`` too, except that when the app
reports ``lifespan.shutdown.complete`` the events still buffered are flushed first
(bounded by 2 s): uvicorn re-raises SIGTERM once it has shut down, which skips ``atexit``
and with it the SDK's exit flush.

Visits: when Starlette's ``SessionMiddleware`` runs outside this middleware (add it
after this one), ``scope["session"]`` keeps a random visit id (key ``_uptake_visit``): its
signed cookie changes on every response, so hashing it would start a session per
request. Otherwise the hash of the first present cookie of ``session_cookies``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any, Final

import uptake
from uptake.integrations._web import (
    SESSION_COOKIES,
    VISIT_KEY,
    RequestScope,
    UserAccount,
    checked_identity,
    cookie_session_id,
    new_visit_id,
)

__all__ = ["UptakeMiddleware"]

_log: Final = logging.getLogger("uptake")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
IdentifyScope = Callable[[Scope], "UserAccount | Awaitable[UserAccount | None] | None"]

_CONNECTIONS: Final = frozenset({"http", "websocket"})
_SHUTDOWN_FLUSH_S: Final = 2.0


class _FlushAtShutdown:
    """The lifespan ``send``: flushes uptake before passing on ``shutdown.complete``."""

    __slots__ = ("_send",)

    def __init__(self, send: Send) -> None:
        self._send = send

    async def __call__(self, message: MutableMapping[str, Any]) -> None:
        if message.get("type") == "lifespan.shutdown.complete":
            # Blocking, at most the bound above: the loop has nothing else to serve now.
            uptake.flush(timeout=_SHUTDOWN_FLUSH_S)
        await self._send(message)


class UptakeMiddleware:
    """Wrap an ASGI app: ``identify(scope) -> (user, account) | None`` per connection.

    ``session_cookies`` as in ``uptake.integrations.wsgi.UptakeMiddleware``. An
    ``identify`` that raises or returns something else than a pair is logged and the
    connection is anonymous.
    """

    def __init__(
        self,
        app: ASGIApp,
        identify: IdentifyScope | None = None,
        *,
        session_cookies: Sequence[str] = SESSION_COOKIES,
    ) -> None:
        self.app = app
        self.identify = identify
        self.session_cookies = tuple(session_cookies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection under its identity (lifespan and others untouched)."""
        if scope["type"] == "lifespan":
            await self.app(scope, receive, _FlushAtShutdown(send))
            return
        if scope["type"] not in _CONNECTIONS:
            await self.app(scope, receive, send)
            return
        identity = await self._identify(scope)
        request = RequestScope()
        request.enter(identity, None if identity is None else self._session_id(scope))
        try:
            await self.app(scope, receive, send)
        finally:
            request.exit()

    async def _identify(self, scope: Scope) -> UserAccount | None:
        if self.identify is None:
            return None
        try:
            found = self.identify(scope)
            if inspect.isawaitable(found):
                found = await found
        except Exception:
            _log.exception("uptake: the identify callable raised; the request is anonymous")
            return None
        return checked_identity(found)

    def _session_id(self, scope: Scope) -> str | None:
        session = scope.get("session")
        if isinstance(session, MutableMapping):
            visit = session.get(VISIT_KEY)
            if not isinstance(visit, str):
                visit = session[VISIT_KEY] = new_visit_id()
            return visit
        for name, value in scope.get("headers", ()):
            if name == b"cookie":
                return cookie_session_id(value.decode("latin-1"), self.session_cookies)
        return None
