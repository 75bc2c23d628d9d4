"""The client: the calls users make, over a batch processor (``uptake._processor``).

``Client`` keeps the identity and session calls; its processor owns the buffer, the
hot-path threshold, the worker thread and the delivery. ``track()`` repeats the hot path
inline (read ``buffer`` and ``wake_at``, append a tuple) rather than calling the
processor: a second Python call with ``**props`` would double its cost.

Fork safety: ``os.register_at_fork(after_in_child=...)`` starts every live client's
processor over in the child (see ``uptake._processor``).

Exit: an ``atexit`` handler shuts every client down with a shared deadline of
``exit_timeout`` (default 2 s), retrying like ``flush()`` until then: what the daemon does
not acknowledge by then is spooled by the worker, which bounds every socket operation by
that deadline (the daemon adopts the spool of an ended process). The handler never
waits longer than the deadline plus a short grace: the host's exit never hangs.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import weakref
from collections import OrderedDict
from contextlib import ContextDecorator
from typing import Any, Final, NoReturn

from uptake._config import Config, resolve_config
from uptake._context import NO_IDENTITY, Identity, current_identity, set_identity
from uptake._delivery import EventSink
from uptake._ids import new_session_id
from uptake._model import Event
from uptake._processor import BatchProcessor
from uptake._stats import Stats, log_once, reset_logged

__all__ = ["Client", "SessionScope"]

_time_ns: Final = time.time_ns
_FEATURE: Final = "feature"
_MAX_OPEN_SESSIONS: Final = 10_000

_clients: weakref.WeakSet[Client] = weakref.WeakSet()


class SessionScope(ContextDecorator):
    """``with client.session():``: ``start_session()`` on entry, ``end_session()`` on exit.

    A class rather than a ``@contextmanager`` generator: entering and leaving cost two
    method calls instead of a generator, its frame and two ``next()`` (about 2 us a
    session, paid by apps that open a session per request).
    """

    __slots__ = ("_client", "_entered", "_props", "_session_id", "_started")

    def __init__(
        self, client: Client | None, session_id: str | None, props: dict[str, Any]
    ) -> None:
        self._client = client
        self._session_id = session_id
        self._props = props
        self._entered: Client | None = None
        self._started: str | None = None

    def _target(self) -> Client:
        """The client the session is recorded by (the module function's: the default)."""
        assert self._client is not None
        return self._client

    def __enter__(self) -> str:
        client = self._entered = self._target()
        started = self._started = client.start_session(self._session_id, **self._props)
        return started

    def __exit__(self, *exc_info: object) -> None:
        if self._entered is not None and self._started is not None:
            self._entered.end_session(self._started)

    def _recreate_cm(self) -> SessionScope:
        # As a decorator: a fresh scope per call, so concurrent calls do not share one.
        return type(self)(self._client, self._session_id, self._props)


class Client:
    """One uptake client: buffer, worker thread and delivery. Most apps use the module
    functions (``uptake.track`` ...), which delegate to a default client; create a
    ``Client`` yourself to send to a second daemon or in tests.

    Options are those of ``uptake.configure()`` (see ``uptake._config``), plus ``sink``
    (an object with ``write(list[Event])`` that receives events instead of the daemon)
    and ``sync`` (process each call on the caller's thread: no worker, no waiting).

    >>> client = Client(disabled=True)
    >>> client.track("export_csv", format="xlsx")
    """

    def __init__(
        self, *, sink: EventSink | None = None, sync: bool = False, **options: Any
    ) -> None:
        self.config: Config = resolve_config(options)
        self._sessions: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        self._processor = BatchProcessor(
            self.config, sink=sink, sync=sync, on_fork=self._reset_lock
        )
        _clients.add(self)
        _register_hooks()

    @property
    def processor(self) -> BatchProcessor:
        """This client's buffer, thresholds and worker (the module functions' hot path)."""
        return self._processor

    def _reset_lock(self) -> None:
        self._lock = threading.Lock()  # another thread may have held it at fork time

    # -- hot path -------------------------------------------------------------------
    def track(self, feature: str = "", /, **props: Any) -> None:
        """Record that the current user used ``feature``; ``props`` are small key/values.

        Returns in about a microsecond and never raises; invalid input (including a
        missing feature name) is rejected in the background and counted in
        ``stats().rejected_by_reason``.

        >>> Client(disabled=True).track("export_csv", format="xlsx", rows=120)
        """
        processor = self._processor
        buffer = processor.buffer
        if len(buffer) < processor.wake_at:
            # None for no props: a tuple holding a dict stays tracked by the garbage
            # collector for good, one holding only atomic values is untracked by the next
            # young collection; a deep buffer then costs full collections nothing.
            buffer.append((_time_ns(), _FEATURE, feature, props or None, current_identity()))
        else:
            processor.slow((_time_ns(), _FEATURE, feature, props or None, current_identity()))

    def _enqueue(self, item: tuple[Any, ...] | Event) -> None:
        processor = self._processor
        buffer = processor.buffer
        if len(buffer) < processor.wake_at:
            buffer.append(item)
        else:
            processor.slow(item)

    # -- identity -------------------------------------------------------------------
    def identify(
        self,
        user: str | None = None,
        account: str | None = None,
        *,
        session: str | None = None,
        **traits: Any,
    ) -> None:
        """Set the user and account of the current thread, asyncio/trio task or request.

        Later calls in this context carry them; other threads and tasks are unaffected.
        With ``traits`` (e.g. ``plan="pro"``) an ``identify`` event records them.
        ``session`` resumes a session the app already knows (e.g. a web session id kept in
        a cookie) without recording a new ``session_start``. Otherwise the current session
        is kept only while the user stays the same: a worker thread reused for another
        user's request must not carry the previous user's session into it.

        >>> Client(disabled=True).identify(user="u1", account="acme", session="web-42")
        """
        current_user, _, current_session = current_identity()
        if session is None and user == current_user:
            session = current_session
        identity: Identity = (user, account, session)
        set_identity(identity)
        if traits:
            self._enqueue((_time_ns(), "identify", None, traits, identity, None))

    def login(self, user: str | None = None, account: str | None = None, **props: Any) -> None:
        """Record a login. With ``user``/``account`` also ``identify()`` them first."""
        if user is not None or account is not None:
            current_user, current_account, session = current_identity()
            set_identity(
                (
                    user if user is not None else current_user,
                    account if account is not None else current_account,
                    session,
                )
            )
        self._enqueue((_time_ns(), "login", None, props or None, current_identity(), None))

    def logout(self, **props: Any) -> None:
        """Record a logout of the current user, then forget user, account and session."""
        self._enqueue((_time_ns(), "logout", None, props or None, current_identity(), None))
        set_identity(NO_IDENTITY)

    # -- sessions ---------------------------------------------------------------------
    def start_session(self, session_id: str | None = None, **props: Any) -> str:
        """Start a session (``session_start`` event); return its id, now in the context.

        The matching ``end_session()`` records the duration in milliseconds.
        """
        now = _time_ns()
        if session_id is None:
            session_id = new_session_id(now)
        with self._lock:
            self._sessions[session_id] = now
            while len(self._sessions) > _MAX_OPEN_SESSIONS:
                self._sessions.popitem(last=False)
        user, account, _ = current_identity()
        identity: Identity = (user, account, session_id)
        set_identity(identity)
        self._enqueue((now, "session_start", None, props or None, identity, None))
        return session_id

    def end_session(self, session_id: str | None = None, **props: Any) -> None:
        """End a session (default: the current context's) with its duration in ms."""
        user, account, current = current_identity()
        if session_id is None:
            session_id = current
        if session_id is None:
            log_once("no_session", "uptake: end_session() without a session; ignored")
            return
        now = _time_ns()
        with self._lock:
            started = self._sessions.pop(session_id, None)
        duration_ms = None if started is None else max(0, (now - started) // 1_000_000)
        identity: Identity = (user, account, session_id)
        self._enqueue((now, "session_end", None, props or None, identity, duration_ms))
        if current == session_id:
            set_identity((user, account, None))

    def session(self, session_id: str | None = None, **props: Any) -> SessionScope:
        """Context manager around ``start_session()`` / ``end_session()``; gives the id.

        Also usable as a decorator (each call of the function is one session).

        >>> with Client(disabled=True).session() as session_id:
        ...     pass
        """
        return SessionScope(self, session_id, props)

    # -- accounts and releases ------------------------------------------------------
    def set_seats(self, account: str, seats: int) -> None:
        """Record the number of licensed seats of ``account`` (from now on)."""
        self._enqueue((_time_ns(), "seats", None, None, (None, account, None), seats))

    def mark_release(self, version: str, **props: Any) -> None:
        """Record a product release (drawn as a marker on trend charts)."""
        self._enqueue((_time_ns(), "release", version, props or None, NO_IDENTITY, None))

    def record(self, event: Event) -> None:
        """Record an explicit event with its own ``ts`` (backfills, simulations).

        An empty ``id`` (``b""``) gets a fresh time-ordered id; the event is validated
        against the schema in the background and rejected (counted) if invalid.
        """
        if type(event) is not Event:
            self._processor.counters.reject(
                "invalid_event", f"record() needs an Event, not {event!r:.60}", log=False
            )
            return
        # Wrapped so that every buffered item is a tuple: the worker's loop branches on
        # len(item) alone (1: record, 5: track, 6: the other calls).
        self._enqueue((event,))

    # -- control --------------------------------------------------------------------
    def flush(self, timeout: float = 2.0) -> bool:
        """Keep delivering for up to ``timeout`` s; True once every earlier call is acknowledged.

        Tries the daemon right away even while reconnects are backing off, then keeps
        reconnecting (paced by the backoff, never sleeping past the deadline), replaying
        this process's spool and sending. Returns True when the daemon acknowledged every
        earlier call (calls rejected or dropped, as counted in ``stats()``, are not waited
        for); False at the timeout: what is left stays spooled (or queued) and is sent later.
        """
        return self._processor.flush(timeout)

    def shutdown(self, timeout: float = 2.0) -> bool:
        """Flush within ``timeout`` s (the rest goes to the spool), then stop the worker.

        Later calls on this client are ignored. Returns True when the daemon acknowledged
        every earlier call, False when something was left in the spool (or lost, counted).
        """
        return self._processor.shutdown(timeout)

    def stats(self) -> Stats:
        """Counters of this client in this process (see ``uptake.Stats``)."""
        return self._processor.stats()


_hooks_registered = False
_hooks_lock = threading.Lock()


def _register_hooks() -> None:
    global _hooks_registered  # noqa: PLW0603 -- process-wide, registered once
    with _hooks_lock:
        if _hooks_registered:
            return
        _hooks_registered = True
    os.register_at_fork(after_in_child=_after_fork_in_child)
    atexit.register(_shutdown_all)
    _register_uwsgi_hook()


#: The pid the fork hook last started over in (so a second hook for one fork is a no-op).
_reset_in_pid = -1


def _register_uwsgi_hook() -> None:
    """Also start over in uWSGI workers forked without Python's at-fork hooks.

    uWSGI forks its workers from C: unless it runs with ``--py-call-osafterfork`` (or
    ``--py-call-uwsgi-fork-hooks``), ``os.register_at_fork`` hooks never run in them, and
    each worker would inherit (and send, with fresh ids) the events the master had
    buffered. uWSGI calls ``uwsgi.post_fork_hook`` in every new worker instead: chain onto
    it (through ``uwsgidecorators.postfork_chain`` when the app uses uwsgidecorators;
    not imported here: importing it replaces ``uwsgi.spooler``). Ours runs first, so
    events tracked by the app's own post-fork hooks belong to the worker.
    """
    uwsgi = sys.modules.get("uwsgi")
    if uwsgi is None:
        return
    chain = getattr(sys.modules.get("uwsgidecorators"), "postfork_chain", None)
    if isinstance(chain, list):
        chain.insert(0, _after_uwsgi_fork)
        return
    previous = getattr(uwsgi, "post_fork_hook", None)

    def post_fork_hook() -> None:
        _after_uwsgi_fork()
        if callable(previous):
            previous()

    try:
        uwsgi.post_fork_hook = post_fork_hook  # type: ignore[attr-defined]
    except Exception as exc:  # an unexpected uwsgi module: the pid checks remain
        log_once("uwsgi_hook", "uptake: cannot chain uwsgi.post_fork_hook: %r", exc)


def _after_uwsgi_fork() -> None:
    if _reset_in_pid != os.getpid():  # with --py-call-osafterfork the at-fork hook ran
        _after_fork_in_child()


def _exit_delivering(status: int) -> NoReturn:
    """``os._exit`` in a forked child: deliver (or spool) what is buffered first.

    Pool children end with ``os._exit``, which skips ``atexit`` and every finalizer:
    billiard's (Celery prefork) after ``--max-tasks-per-child`` or a pool shrink, and
    other prefork servers. Without this, a child's last calls would be lost. Bounded by
    ``exit_timeout`` like the exit handler, and a no-op when nothing is left to send.
    """
    if os.getpid() == _reset_in_pid:
        try:
            _shutdown_all()
        except BaseException as exc:  # exiting anyway: never turn it into a traceback
            log_once("exit_error", "uptake: flushing at os._exit failed: %r", exc)
    _os_exit(status)


_os_exit: Final = os._exit


def _after_fork_in_child() -> None:
    global _reset_in_pid  # noqa: PLW0603 -- process-wide, like the hooks themselves
    _reset_in_pid = os.getpid()
    if os._exit is _os_exit:
        os._exit = _exit_delivering
    reset_logged()
    global _hooks_lock  # noqa: PLW0603 -- the parent's lock may be held at fork time
    _hooks_lock = threading.Lock()
    for client in list(_clients):
        try:
            client.processor.after_fork(hooks_ran=True)
        except Exception as exc:  # a fork hook must never break the child
            log_once("fork_error", "uptake: resetting after fork failed: %r", exc)
    # multiprocessing children end with os._exit() and skip atexit, but run its finalizers.
    # Process._bootstrap clears the finalizer registry after this hook, then runs the
    # after-fork callbacks: register the finalizer from one of those.
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None:
        mp_util.register_after_fork(_MP_TOKEN, _register_mp_finalizer)


class _Token:
    """A weak-referenceable key for ``multiprocessing.util.register_after_fork``."""


_MP_TOKEN: Final = _Token()


def _register_mp_finalizer(_token: object) -> None:
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None:
        mp_util.Finalize(None, _shutdown_all, exitpriority=100)


def _shutdown_all() -> None:
    """At exit: shut every client of this process down within one shared deadline."""
    clients = [client for client in list(_clients) if not client.processor.closed]
    if not clients:
        return
    deadline = time.monotonic() + max(client.config.exit_timeout for client in clients)
    for client in clients:
        try:
            client.shutdown(timeout=max(0.0, deadline - time.monotonic()))
        except Exception as exc:  # never turn a clean exit into a traceback
            log_once("exit_error", "uptake: flushing at exit failed: %r", exc)
