"""Who is acting: the user, account and session of the current thread, task or request.

One ``ContextVar`` holds an immutable ``(user, account, session)`` tuple, so ``track()``
reads the whole identity with a single ``get()`` and the worker thread later copies the
three fields into the event. Context variables follow asyncio and trio tasks (each task
runs in a copy of its parent's context) and each thread starts with the empty identity,
so one request's ``identify()`` never leaks into another's.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Final

__all__ = ["NO_IDENTITY", "Identity", "current_identity", "set_identity"]

#: ``(user, account, session)``; any of them may be None.
Identity = tuple["str | None", "str | None", "str | None"]

NO_IDENTITY: Final[Identity] = (None, None, None)

_identity: ContextVar[Identity] = ContextVar("uptake_identity", default=NO_IDENTITY)

#: The hot path binds this bound method once; calling it costs one C call.
current_identity: Final = _identity.get

#: Replace the identity of the current context (the bound ``ContextVar.set``: one C call,
#: no Python frame; the returned token is not needed).
set_identity: Final = _identity.set
