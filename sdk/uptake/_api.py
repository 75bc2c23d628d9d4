"""Module-level functions (``uptake.track`` ...) delegating to a lazily created default client.

The first call creates the default client from the ``UPTAKE_*`` environment unless
``configure()`` ran before. ``track()`` repeats the hot path inline on the default
client's processor (kept in ``_processor`` beside ``_default``) rather than calling
``Client.track``: a second Python call with ``**props`` would double its cost.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Final

from uptake._context import Identity, current_identity, set_identity
from uptake._delivery import EventSink
from uptake._model import Event
from uptake._processor import BatchProcessor
from uptake._stats import Stats
from uptake._tracker import Client, SessionScope

__all__ = [
    "configure",
    "current_context",
    "default_client",
    "end_session",
    "flush",
    "identify",
    "login",
    "logout",
    "mark_release",
    "record",
    "restore_context",
    "session",
    "set_seats",
    "shutdown",
    "start_session",
    "stats",
    "track",
]

_log: Final = logging.getLogger("uptake")
_time_ns: Final = time.time_ns
_default: Client | None = None
#: The default client's processor, for the inlined hot path of ``track()``.
_processor: BatchProcessor | None = None
_default_lock = threading.Lock()


def default_client() -> Client:
    """Return the default client, creating it from the environment on first use."""
    client = _default
    if client is None:
        with _default_lock:
            client = _default
            if client is None:
                client = Client()
                _set_default(client)
    return client


def _reset_lock_after_fork() -> None:
    global _default_lock  # noqa: PLW0603 -- another thread may hold it at fork time
    _default_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_lock_after_fork)


def _set_default(client: Client | None) -> Client | None:
    global _default, _processor  # noqa: PLW0603 -- the module functions read these globals
    _processor = None if client is None else client.processor
    _default = client
    return client


def swap_default(client: Client | None) -> Client | None:
    """Make ``client`` the default (None: create lazily again); return the previous one.

    For ``uptake.testing``: the previous client is neither flushed nor shut down.
    """
    with _default_lock:
        previous = _default
        _set_default(client)
    return previous


def configure(*, sink: EventSink | None = None, sync: bool = False, **options: Any) -> Client:
    """(Re)configure the default client; return it. Options override ``UPTAKE_*`` env.

    Options: ``app``, ``socket`` (path or ``tcp://127.0.0.1:PORT``), ``disabled``,
    ``spool``, ``spool_dir``, ``spool_max_bytes``, ``flush_interval``, ``max_batch``,
    ``max_queue``, ``exit_timeout``, ``token``, ``token_file``; plus ``sink`` and ``sync``
    for tests (see ``uptake.testing``). A previous default client is shut down (its
    events flushed or spooled). Never raises: bad values are logged and replaced.

    >>> client = configure(app="billing", disabled=True)
    >>> client.config.app
    'billing'
    """
    with _default_lock:
        previous = _default
        client = Client(sink=sink, sync=sync, **options)
        _set_default(client)
    if previous is not None:
        previous.shutdown(timeout=previous.config.exit_timeout)
    return client


def track(feature: str = "", /, **props: Any) -> None:
    """Record that the current user used ``feature``; ``props`` are small key/values.

    Never blocks, never raises, about a microsecond: the event is appended to a bounded
    buffer that a background thread sends to the daemon.

    >>> track("export_csv", format="xlsx")
    """
    processor = _processor
    if processor is not None:
        buffer = processor.buffer
        if len(buffer) < processor.wake_at:
            # None for no props: see Client.track (the garbage collector and deep buffers).
            buffer.append((_time_ns(), "feature", feature, props or None, current_identity()))
            return
    else:
        processor = default_client().processor
    processor.slow((_time_ns(), "feature", feature, props or None, current_identity()))


def identify(
    user: str | None = None,
    account: str | None = None,
    *,
    session: str | None = None,
    **traits: Any,
) -> None:
    """Set the user and account of the current thread / asyncio or trio task / request.

    ``session`` resumes a session id the app already has (no new ``session_start``); a
    change of user otherwise drops the previous user's session from the context.

    >>> identify(user="u1", account="acme")
    """
    default_client().identify(user, account, session=session, **traits)


def current_context() -> Identity:
    """The ``(user, account, session)`` bound to the current thread / task / request.

    With ``restore_context()``, for code that carries an identity across a boundary the
    context variable does not cross (a task queue's message headers, a framework hook that
    must put back what it found). Records nothing.
    """
    return current_identity()


def restore_context(context: Identity) -> None:
    """Bind exactly ``(user, account, session)`` to the current context; records nothing.

    Unlike ``identify()`` it neither keeps nor drops a session by comparing users: the
    integrations put back what ``current_context()`` gave them. Malformed values are
    logged and replaced by "nobody" (the SDK never raises into the host).
    """
    if type(context) is tuple and len(context) == 3:
        user, account, session_id = context
        if (
            (user is None or type(user) is str)
            and (account is None or type(account) is str)
            and (session_id is None or type(session_id) is str)
        ):
            set_identity(context)
            return
    _log.warning("uptake: restore_context() needs (user, account, session); got %r", context)
    set_identity((None, None, None))


def login(user: str | None = None, account: str | None = None, **props: Any) -> None:
    """Record a login (identifying ``user``/``account`` first when given)."""
    default_client().login(user, account, **props)


def logout(**props: Any) -> None:
    """Record a logout and forget the current user, account and session."""
    default_client().logout(**props)


def start_session(session_id: str | None = None, **props: Any) -> str:
    """Start a session and make it current; return its id."""
    return default_client().start_session(session_id, **props)


def end_session(session_id: str | None = None, **props: Any) -> None:
    """End a session (default: the current one), recording its duration in ms."""
    default_client().end_session(session_id, **props)


def session(session_id: str | None = None, **props: Any) -> SessionScope:
    """``with uptake.session():`` records ``session_start`` and ``session_end`` with duration.

    >>> with session() as session_id:
    ...     track("export_csv")
    """
    return _DefaultSessionScope(None, session_id, props)


class _DefaultSessionScope(SessionScope):
    """A session of whichever client is the default when it starts (as with a decorator)."""

    __slots__ = ()

    def _target(self) -> Client:
        return default_client()


def set_seats(account: str, seats: int) -> None:
    """Record the number of licensed seats of ``account``."""
    default_client().set_seats(account, seats)


def mark_release(version: str, **props: Any) -> None:
    """Record a product release (a marker on trend charts)."""
    default_client().mark_release(version, **props)


def record(event: Event) -> None:
    """Record an explicit ``Event`` with its own timestamp (an empty id gets a fresh one)."""
    default_client().record(event)


def flush(timeout: float = 2.0) -> bool:
    """Keep delivering for up to ``timeout`` s; True once every earlier event is acknowledged.

    Reconnects (paced by the backoff), replays this process's spool and sends until the
    daemon acknowledged every earlier call, or the timeout passes (False: the rest stays
    spooled and is sent later, by this process or by the daemon adopting the spool).
    """
    return default_client().flush(timeout)


def shutdown(timeout: float = 2.0) -> bool:
    """Flush within ``timeout`` s, spool the rest, stop the worker. Also runs at exit.

    True only when the daemon acknowledged every earlier call.
    """
    return default_client().shutdown(timeout)


def stats() -> Stats:
    """Delivery counters of the default client: queued, sent, dropped, spooled, failed..."""
    return default_client().stats()
