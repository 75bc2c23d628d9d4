"""Django: ``"uptake.integrations.django.UptakeMiddleware"`` in ``MIDDLEWARE``.

Put it after ``AuthenticationMiddleware``. Each request runs under ``request.user``
(anonymous users: nobody) in its own ``contextvars`` copy, so no identity survives the
response; streaming responses produce their content in that copy and end the request
when Django closes them. Under ASGI with async views the middleware runs async: the
identity is bound in the request's task, async streaming bodies rebind it around each
chunk. The visit's session id is a hash of the session cookie
(``settings.SESSION_COOKIE_NAME``; Django rotates it at login and logout).

Settings (all optional):

- ``UPTAKE_ACCOUNT = "dotted.path.to.fn"``: ``fn(request) -> str | None``, the account
  (customer organisation) of the request's user;
- ``UPTAKE_USER = "dotted.path.to.fn"``: ``fn(request) -> str | None``; default the user's
  primary key as text.

``login`` and ``logout`` events come from Django's ``user_logged_in`` /
``user_logged_out`` signals, connected once when the middleware is first built.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Final

import uptake
from uptake.integrations._web import (
    ContextBody,
    Identity,
    RequestScope,
    UserAccount,
    cookie_session_id,
)

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponseBase

__all__ = ["UptakeMiddleware"]

_log: Final = logging.getLogger("uptake")
#: Marks a request served under the middleware (the login signal then binds the user).
_MARK: Final = "_uptake_scope"

RequestFn = Callable[["HttpRequest"], Any]


def _setting_function(name: str) -> RequestFn | None:
    from django.conf import settings
    from django.utils.module_loading import import_string

    path = getattr(settings, name, None)
    if not path:
        return None
    function: RequestFn = import_string(path)
    return function


def _user_id(request: HttpRequest) -> str | None:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    return str(user.pk)


class _Identities:
    """The user and account of a request, from the settings (read on first use)."""

    def __init__(self) -> None:
        self.user: RequestFn = _setting_function("UPTAKE_USER") or _user_id
        self.account: RequestFn | None = _setting_function("UPTAKE_ACCOUNT")

    def of(self, request: HttpRequest) -> UserAccount | None:
        try:
            user = self.user(request)
            if user is None:
                return None
            account = None if self.account is None else self.account(request)
        except Exception:
            _log.exception("uptake: identifying the Django request failed; it is anonymous")
            return None
        return (str(user), None if account is None else str(account))


_identities: _Identities | None = None


def _identities_from_settings() -> _Identities:
    global _identities  # noqa: PLW0603 -- built once, from the settings of this process
    if _identities is None:
        _identities = _Identities()
    return _identities


def _on_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is not None and getattr(request, "user", None) is None:
        # login() sets request.user only on requests that had one (the test client's
        # force_login() builds a bare request): identify from the user being logged in.
        request.user = user
    identities = _identities_from_settings()
    identity = None if request is None else identities.of(request)
    if identity is None:
        return
    if request is not None and hasattr(request, _MARK):
        uptake.login(*identity)  # the rest of this request runs under the new user
        return
    # Outside a request under the middleware (the test client's login(), a management
    # command): record the login without binding the user to the caller's context.
    previous = uptake.current_context()
    try:
        uptake.login(*identity)
    finally:
        uptake.restore_context(previous)


def _on_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is not None and hasattr(request, _MARK):
        uptake.logout()
        return
    if request is None or user is None:
        return
    identity = _identities_from_settings().of(request)
    if identity is None:
        return
    previous = uptake.current_context()
    try:
        uptake.restore_context((*identity, None))
        uptake.logout()
    finally:
        uptake.restore_context(previous)


def _on_setting_changed(setting: str = "", **kwargs: Any) -> None:
    global _identities  # noqa: PLW0603 -- re-read on the next request
    if setting in ("UPTAKE_USER", "UPTAKE_ACCOUNT"):
        _identities = None


def _connect_signals() -> None:
    from django.contrib.auth.signals import user_logged_in, user_logged_out
    from django.core.signals import setting_changed

    # dispatch_uid: connected once however many middleware instances Django builds.
    user_logged_in.connect(_on_login, dispatch_uid="uptake.integrations.django.login")
    user_logged_out.connect(_on_logout, dispatch_uid="uptake.integrations.django.logout")
    # override_settings in the host's tests: read UPTAKE_USER / UPTAKE_ACCOUNT again.
    setting_changed.connect(_on_setting_changed, dispatch_uid="uptake.integrations.django.settings")


def _session_id(request: HttpRequest, identity: UserAccount | None) -> str | None:
    from django.conf import settings

    name = settings.SESSION_COOKIE_NAME
    cookie = request.COOKIES.get(name) if identity is not None else None
    return cookie_session_id(f"{name}={cookie}", (name,)) if cookie else None


async def _bound_chunks(
    chunks: AsyncIterator[Any], identity: Identity, finish: Callable[[], None]
) -> AsyncIterator[Any]:
    """An async streaming body produced under the request's identity, then ``finish()``.

    Django's ASGI handler iterates it after the middleware returned, in the same task:
    the identity is bound around each step and the task's own context put back between.
    """
    try:
        while True:
            previous = uptake.current_context()
            uptake.restore_context(identity)
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            finally:
                uptake.restore_context(previous)
            yield chunk
    finally:
        previous = uptake.current_context()
        uptake.restore_context(identity)
        try:
            finish()
        finally:
            uptake.restore_context(previous)


class UptakeMiddleware:
    """Django middleware: the request's user and account, its visit, cleared after.

    Sync and async: under ASGI with an async middleware chain, ``request.user`` and the
    ``UPTAKE_*`` callables run in a worker thread (they may query the database), the
    identity is bound in the request's task and put back when the response is done.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        from asgiref.sync import iscoroutinefunction, markcoroutinefunction

        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        _connect_signals()

    def __call__(self, request: HttpRequest) -> Any:
        """Serve one request inside its own context (a coroutine when async)."""
        if self.is_async:
            return self._serve_async(request)
        context = contextvars.copy_context()
        return context.run(self._serve, context, request)

    def _serve(self, context: contextvars.Context, request: HttpRequest) -> HttpResponseBase:
        scope = RequestScope()
        setattr(request, _MARK, scope)
        identity = _identities_from_settings().of(request)
        scope.enter(identity, _session_id(request, identity))
        try:
            response: HttpResponseBase = self.get_response(request)
        except BaseException:
            scope.exit()
            raise
        if getattr(response, "streaming", False) and not getattr(response, "is_async", False):
            # Produced after this returns: in the request's context, ended by close().
            body = ContextBody(response.streaming_content, context, scope.exit)  # type: ignore[attr-defined]
            response.streaming_content = body  # type: ignore[attr-defined]
        else:
            scope.exit()
        return response

    async def _serve_async(self, request: HttpRequest) -> HttpResponseBase:
        from asgiref.sync import sync_to_async

        scope = RequestScope()
        setattr(request, _MARK, scope)
        identity = await sync_to_async(_identities_from_settings().of)(request)
        session_id = _session_id(request, identity)
        scope.enter(identity, session_id)
        try:
            response: HttpResponseBase = await self.get_response(request)
        except BaseException:
            scope.exit()
            raise
        if getattr(response, "streaming", False) and getattr(response, "is_async", False):
            bound = uptake.current_context()
            scope_exit = scope.exit
            # The task's context goes back now; the chunks rebind the request's identity.
            uptake.restore_context(scope.previous)
            response.streaming_content = _bound_chunks(  # type: ignore[attr-defined]
                response.streaming_content,  # type: ignore[attr-defined]
                bound,
                scope_exit,
            )
        else:
            scope.exit()
        return response
