"""``UptakeMiddleware``: any WSGI app's requests run under the identity ``identify`` gives.

    from uptake.integrations.wsgi import UptakeMiddleware
    app = UptakeMiddleware(app, identify=lambda environ: (environ.get("REMOTE_USER"), None))

Each request runs in a copy of the server thread's context (``contextvars``), so its
identity can never reach another request on the same thread, greenlet or worker, and the
response body is produced in that copy too (streaming bodies track under the request's
user). The request ends, with the visit's ``session_end``, when the server closes the
body (PEP 3333 servers always do, also after an error or a client disconnect) or when the
app raises.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from uptake.integrations._web import (
    SESSION_COOKIES,
    ContextBody,
    RequestScope,
    UserAccount,
    cookie_session_id,
    safe_identify,
)

__all__ = ["UptakeMiddleware"]

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


class UptakeMiddleware:
    """Wrap a WSGI app: ``identify(environ) -> (user, account) | None`` per request.

    ``session_cookies``: the cookie names that identify a visit, first present wins
    (default Django's ``sessionid``, then Flask's / Starlette's ``session``); the session
    id is a hash of the cookie's value. An ``identify`` that raises or returns something
    else than a pair is logged and the request is anonymous: the app never sees an error.
    """

    def __init__(
        self,
        app: WSGIApp,
        identify: Callable[[Environ], UserAccount | None] | None = None,
        *,
        session_cookies: Sequence[str] = SESSION_COOKIES,
    ) -> None:
        self.app = app
        self.identify = identify
        self.session_cookies = tuple(session_cookies)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request inside its own context."""
        context = contextvars.copy_context()
        return context.run(self._serve, context, environ, start_response)

    def _serve(
        self, context: contextvars.Context, environ: Environ, start_response: StartResponse
    ) -> Iterable[bytes]:
        scope = RequestScope()
        identity = safe_identify(self.identify, environ)
        session_id = None
        if identity is not None:
            session_id = cookie_session_id(environ.get("HTTP_COOKIE", ""), self.session_cookies)
        scope.enter(identity, session_id)
        try:
            body = self.app(environ, start_response)
        except BaseException:
            scope.exit()
            raise
        return ContextBody(body, context, scope.exit)
