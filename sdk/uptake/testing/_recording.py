"""In-memory recording of events for host-app tests, with assertions that need no sleeps."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from uptake import _api
from uptake._context import NO_IDENTITY, set_identity
from uptake._model import Event
from uptake._stats import Stats
from uptake._tracker import Client

__all__ = ["ANY", "RecordingSink", "UsageEvents", "recording"]


class _Any:
    """Matches any value in ``assert_tracked`` (the default for ``user`` and ``account``)."""

    def __repr__(self) -> str:
        return "ANY"


#: Wildcard for ``user=``/``account=`` (None means "no user", not "any user").
ANY: Final[Any] = _Any()


class RecordingSink:
    """Keeps every event a client delivers, in order; thread-safe.

    Pass it as ``sink=`` to ``uptake.configure()`` or ``uptake.Client()``; combine it
    with ``sync=True`` so each call is recorded before it returns.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[Event] = []

    def write(self, events: list[Event]) -> None:
        """Record one batch (called by the client)."""
        with self._lock:
            self._events.extend(events)

    @property
    def events(self) -> list[Event]:
        """A copy of the events recorded so far."""
        with self._lock:
            return list(self._events)

    def clear(self) -> None:
        """Forget the recorded events."""
        with self._lock:
            self._events.clear()


def _describe(event: Event) -> str:
    parts: list[str] = [event.kind]
    if event.name is not None:
        parts.append(repr(event.name))
    for field in ("user", "account", "session", "value", "props"):
        value = getattr(event, field)
        if value is not None:
            parts.append(f"{field}={value!r}")
    return " ".join(parts)


class UsageEvents:
    """What the ``usage_events`` fixture gives a test: recorded events and assertions.

    Example::

        def test_export_is_tracked(usage_events):
            export_report(user="u1")
            usage_events.assert_tracked("export_csv", user="u1", count=1)
            usage_events.assert_not_tracked("export_pdf")
    """

    def __init__(self, client: Client, sink: RecordingSink) -> None:
        self.client = client
        self.sink = sink

    @property
    def events(self) -> list[Event]:
        """Every valid event recorded so far, in call order."""
        return self.sink.events

    @property
    def features(self) -> list[str]:
        """Names of the recorded ``feature`` events, in call order."""
        return [event.name or "" for event in self.events if event.kind == "feature"]

    def stats(self) -> Stats:
        """The recording client's counters (``rejected_by_reason`` shows invalid calls)."""
        return self.client.stats()

    def clear(self) -> None:
        """Forget the events recorded so far."""
        self.sink.clear()

    def find(
        self,
        name: str | None = None,
        *,
        kind: str | None = None,
        user: Any = ANY,
        account: Any = ANY,
        **props: Any,
    ) -> list[Event]:
        """Recorded events matching every given criterion.

        ``name`` alone means a ``feature`` event of that name; give ``kind`` for others
        (``kind="release", name="2.4.0"``; ``kind="login", user="u1"``). ``props`` must be
        a subset of the event's props.
        """
        if kind is None and name is not None:
            kind = "feature"
        matches = []
        for event in self.events:
            if kind is not None and event.kind != kind:
                continue
            if name is not None and event.name != name:
                continue
            if user is not ANY and event.user != user:
                continue
            if account is not ANY and event.account != account:
                continue
            if props and any(
                (event.props or {}).get(key, _MISSING) != value for key, value in props.items()
            ):
                continue
            matches.append(event)
        return matches

    def assert_tracked(
        self,
        name: str | None = None,
        *,
        kind: str | None = None,
        user: Any = ANY,
        account: Any = ANY,
        count: int | None = None,
        **props: Any,
    ) -> list[Event]:
        """Assert a matching event was recorded (exactly ``count`` times if given).

        Returns the matching events. The failure message lists what was recorded.
        """
        matches = self.find(name, kind=kind, user=user, account=account, **props)
        wanted = self._criteria(name, kind, user, account, props)
        if count is None and not matches:
            raise AssertionError(f"no event matching {wanted}; recorded:\n{self._listing()}")
        if count is not None and len(matches) != count:
            raise AssertionError(
                f"expected {count} event(s) matching {wanted}, found {len(matches)};"
                f" recorded:\n{self._listing()}"
            )
        return matches

    def assert_not_tracked(
        self,
        name: str | None = None,
        *,
        kind: str | None = None,
        user: Any = ANY,
        account: Any = ANY,
        **props: Any,
    ) -> None:
        """Assert no matching event was recorded."""
        matches = self.find(name, kind=kind, user=user, account=account, **props)
        if matches:
            wanted = self._criteria(name, kind, user, account, props)
            raise AssertionError(
                f"expected no event matching {wanted}, found {len(matches)};"
                f" recorded:\n{self._listing()}"
            )

    @staticmethod
    def _criteria(
        name: str | None, kind: str | None, user: Any, account: Any, props: dict[str, Any]
    ) -> str:
        parts = []
        if kind is not None or name is not None:
            parts.append(kind or "feature")
        if name is not None:
            parts.append(repr(name))
        if user is not ANY:
            parts.append(f"user={user!r}")
        if account is not ANY:
            parts.append(f"account={account!r}")
        if props:
            parts.append(f"props⊇{props!r}")
        return " ".join(parts) or "anything"

    def _listing(self) -> str:
        events = self.events
        if not events:
            return "  (nothing)"
        return "\n".join(f"  {_describe(event)}" for event in events)


_MISSING: Final = object()


@contextmanager
def recording(app: str | None = None) -> Iterator[UsageEvents]:
    """Record the module-level calls (``uptake.track`` ...) in memory, synchronously.

    Installs a sync-mode default client with a ``RecordingSink`` and restores the
    previous default client (untouched) afterwards. The identity of the current context
    is cleared before and after, so tests do not leak users into each other.

    >>> import uptake
    >>> with recording() as usage:
    ...     uptake.track("export_csv", format="xlsx")
    >>> usage.features
    ['export_csv']
    """
    sink = RecordingSink()
    client = Client(sink=sink, sync=True, app=app, disabled=False, spool=False)
    previous = _api.swap_default(client)
    set_identity(NO_IDENTITY)
    try:
        yield UsageEvents(client, sink)
    finally:
        set_identity(NO_IDENTITY)
        _api.swap_default(previous)
        client.shutdown(timeout=0.1)
