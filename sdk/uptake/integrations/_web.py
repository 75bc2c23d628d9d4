"""What the web integrations share: a visit's session id and one request's identity scope.

A *visit* is one uptake session across many requests, so each request re-enters it:

- server-side sessions (Django's ``sessionid``) and plain WSGI/ASGI apps: the session id is
  a hash of the session cookie's value (never the raw value: it is a credential), so every
  worker process derives the same id and the raw cookie is stored nowhere;
- cookie-backed sessions (Flask, Starlette's ``SessionMiddleware``) re-sign their cookie
  whenever the session changes (Starlette on every response), so the integration keeps a
  random visit id inside the session instead (key ``_uptake_visit``).

The first request of a visit that a process serves records ``session_start``; every
identified request of the visit ends with a ``session_end`` carrying the same id, so the
daemon's session (earliest start to latest end, docs/metrics.md) spans the whole visit,
whichever worker served each request.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import Context
from typing import Any, Final

import uptake

__all__ = [
    "SESSION_COOKIES",
    "VISIT_KEY",
    "ContextBody",
    "Identify",
    "Identity",
    "RequestScope",
    "UserAccount",
    "checked_identity",
    "cookie_session_id",
    "forget_visits",
    "hashed_session_id",
    "new_visit_id",
    "safe_identify",
]

_log: Final = logging.getLogger("uptake")

#: The cookies that name a visit by default: Django's ``sessionid``, Flask's and Starlette's
#: ``session``. The first one present wins.
SESSION_COOKIES: Final = ("sessionid", "session")

#: Where Flask and Starlette sessions keep the random id of the visit.
VISIT_KEY: Final = "_uptake_visit"

#: ``(user, account, session)``, as ``uptake.current_context()`` gives it.
Identity = tuple["str | None", "str | None", "str | None"]

#: What an ``identify`` callable returns: ``(user, account)`` or None (anonymous).
UserAccount = tuple["str | None", "str | None"]
Identify = Callable[[Any], "UserAccount | None"]

_NOBODY: Final = (None, None, None)
_MAX_SEEN_VISITS: Final = 10_000


def hashed_session_id(secret: str) -> str:
    """A stable session id for a secret value (a session cookie): a short keyless hash."""
    return "web-" + hashlib.blake2b(secret.encode(), digest_size=12).hexdigest()


def new_visit_id() -> str:
    """A fresh random visit id, for sessions that keep it themselves (Flask, Starlette)."""
    return "web-" + secrets.token_hex(12)


def cookie_session_id(cookie_header: str, names: Sequence[str]) -> str | None:
    """The visit's session id from a ``Cookie`` header: the hash of the first of ``names``.

    Parsed by hand: ``http.cookies`` is slow and rejects whole headers for one odd cookie.
    """
    if not cookie_header:
        return None
    found: dict[str, str] = {}
    for pair in cookie_header.split(";"):
        name, sep, value = pair.partition("=")
        if sep:
            name = name.strip()
            if name in names and name not in found:
                found[name] = value.strip().strip('"')
    for name in names:
        cookie = found.get(name)
        if cookie:
            return hashed_session_id(f"{name}={cookie}")
    return None


def safe_identify(identify: Callable[..., Any] | None, *args: Any) -> UserAccount | None:
    """Call the host's ``identify`` callable; anything wrong is logged and means anonymous."""
    if identify is None:
        return None
    try:
        found = identify(*args)
    except Exception:
        _log.exception("uptake: the identify callable raised; the request is anonymous")
        return None
    return checked_identity(found)


def checked_identity(found: Any) -> UserAccount | None:
    """``(user, account)`` with ids as text, or None when ``found`` is not such a pair."""
    if found is None:
        return None
    if not isinstance(found, tuple) or len(found) != 2:
        _log.warning("uptake: identify must return (user, account) or None, not %r", found)
        return None
    user, account = found
    if user is None and account is None:
        return None
    return (None if user is None else str(user), None if account is None else str(account))


class _SeenVisits:
    """Visits whose ``session_start`` this process recorded (bounded, least recent out)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, None] = OrderedDict()

    def first_sight(self, session_id: str) -> bool:
        with self._lock:
            if session_id in self._seen:
                self._seen.move_to_end(session_id)
                return False
            self._seen[session_id] = None
            if len(self._seen) > _MAX_SEEN_VISITS:
                self._seen.popitem(last=False)
            return True

    def forget(self) -> None:
        with self._lock:
            self._seen.clear()

    def reset_lock(self) -> None:
        self._lock = threading.Lock()  # another thread may have held it at fork time


_visits: Final = _SeenVisits()
os.register_at_fork(after_in_child=_visits.reset_lock)


class RequestScope:
    """One request's identity: bound by ``enter()``, the visit ended and the context put
    back by ``exit()`` (idempotent, so error paths may call it again)."""

    __slots__ = ("_done", "_identity", "_previous")

    def __init__(self) -> None:
        self._previous: tuple[str | None, str | None, str | None] = _NOBODY
        self._identity: tuple[str | None, str | None, str | None] | None = None
        self._done = False

    @property
    def previous(self) -> Identity:
        """The context found when the request began (put back by ``exit()``)."""
        return self._previous

    def enter(self, identity: UserAccount | None, session_id: str | None) -> None:
        """Bind ``identity`` (None: nobody) and re-enter the visit ``session_id``."""
        self._previous = uptake.current_context()
        if identity is None:
            uptake.restore_context(_NOBODY)
            return
        user, account = identity
        if session_id is not None and _visits.first_sight(session_id):
            uptake.restore_context((user, account, None))
            uptake.start_session(session_id)
        else:
            uptake.restore_context((user, account, session_id))
        self._identity = (user, account, session_id)

    def exit(self) -> None:
        """End the request: ``session_end`` for its visit, then the context it found."""
        if self._done:
            return
        self._done = True
        try:
            identity = self._identity
            if identity is not None and identity[2] is not None:
                # As the request began: the view may have logged out or switched users.
                uptake.restore_context(identity)
                uptake.end_session(identity[2])
        finally:
            uptake.restore_context(self._previous)


class ContextBody:
    """A response body whose chunks are produced inside the request's context.

    Streaming bodies (WSGI iterables, Django's streaming content) run the view's generator
    after the view returned: each ``next()`` runs in the request's context, so ``track()``
    in the generator carries the request's user; ``close()`` (PEP 3333 servers always call
    it, also after an error or a disconnect) ends the request's scope.
    """

    __slots__ = ("_body", "_closed", "_context", "_finish", "_iterator")

    def __init__(self, body: Iterable[Any], context: Context, finish: Callable[[], None]) -> None:
        self._body = body
        self._context = context
        self._finish = finish
        self._iterator: Iterator[Any] | None = None
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        if type(self._body) in (list, tuple):
            return iter(self._body)  # ready-made chunks: no code of the app runs
        return self

    def __next__(self) -> Any:
        iterator = self._iterator
        if iterator is None:
            iterator = self._iterator = self._context.run(iter, self._body)
        return self._context.run(next, iterator)

    def close(self) -> None:
        """Close the wrapped body, then end the request (once)."""
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                self._context.run(close)
        finally:
            self._context.run(self._finish)


def forget_visits() -> None:
    """Forget which visits this process started (tests that start from scratch)."""
    _visits.forget()
