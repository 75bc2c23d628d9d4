"""Flask: ``Uptake(app, identify=fn)``, or ``uptake_ext = Uptake(identify=fn)`` then
``uptake_ext.init_app(app)`` in an app factory.

``identify(request) -> (user, account) | None`` runs before each request, inside the
request context (so it may read ``flask.session``, ``g`` or Flask-Login's ``current_user``).
Every request runs in its own ``contextvars`` copy (the extension wraps ``app.wsgi_app``),
its body is produced in that copy (streamed ones too) and it ends when the server closes
the body, so no identity survives the response.
A visit is one session: Flask's session cookie is re-signed whenever the session changes,
so a random visit id is kept in the session itself (key ``_uptake_visit``) for identified
users; ``session.clear()`` at logout ends the visit.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from uptake.integrations._web import (
    VISIT_KEY,
    ContextBody,
    RequestScope,
    UserAccount,
    new_visit_id,
    safe_identify,
)

if TYPE_CHECKING:
    from flask import Flask, Request

__all__ = ["Uptake"]

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


#: The scope of the request being served, in the request's own context.
_scope: ContextVar[RequestScope | None] = ContextVar("uptake_flask_scope", default=None)


def _finish() -> None:
    scope = _scope.get()
    if scope is not None:
        scope.exit()


class _Isolated:
    """A WSGI app run in a copy of the server's context, its body produced in the copy.

    The request ends when the server closes the body, not in ``teardown_request``: Flask
    tears down before a streamed body (even ``stream_with_context``'s) is produced.
    """

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        context = contextvars.copy_context()
        try:
            body = context.run(self.app, environ, start_response)
        except BaseException:
            context.run(_finish)
            raise
        return ContextBody(body, context, _finish)


class Uptake:
    """The Flask extension (``app.extensions["uptake"]``)."""

    def __init__(
        self,
        app: Flask | None = None,
        identify: Callable[[Request], UserAccount | None] | None = None,
    ) -> None:
        self.identify = identify
        if app is not None:
            self.init_app(app)

    def init_app(
        self, app: Flask, identify: Callable[[Request], UserAccount | None] | None = None
    ) -> None:
        """Instrument ``app`` (``identify`` here overrides the constructor's)."""
        if identify is not None:
            self.identify = identify
        app.extensions["uptake"] = self
        app.wsgi_app = _Isolated(app.wsgi_app)  # type: ignore[method-assign]
        app.before_request(self._enter)

    def _enter(self) -> None:
        from flask import request, session

        identity = safe_identify(self.identify, request)
        session_id = None
        if identity is not None:
            visit = session.get(VISIT_KEY)
            if not isinstance(visit, str):
                try:
                    visit = session[VISIT_KEY] = new_visit_id()
                except RuntimeError:  # no SECRET_KEY: a null session; no visit then
                    visit = None
            session_id = visit
        scope = RequestScope()
        _scope.set(scope)
        scope.enter(identity, session_id)
