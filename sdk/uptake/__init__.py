"""uptake: local product-usage tracking for Python apps.

Quick use::

    import uptake

    uptake.configure(app="billing")              # optional; defaults come from UPTAKE_* env
    uptake.identify(user="u1", account="acme")   # this thread's / task's / request's user
    uptake.login()
    with uptake.session():
        uptake.track("export_csv", format="xlsx")
    uptake.set_seats("acme", 50)

Every call returns in about a microsecond, never blocks on I/O and never raises into the
app; a background thread batches events to the local daemon (``usage daemon start``),
spooling them on disk while it is down. See ``uptake.testing`` for tests.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from uptake._api import (
        configure,
        current_context,
        default_client,
        end_session,
        flush,
        identify,
        login,
        logout,
        mark_release,
        record,
        restore_context,
        session,
        set_seats,
        shutdown,
        start_session,
        stats,
        track,
    )
    from uptake._model import Event
    from uptake._stats import Stats
    from uptake._tracker import Client

__all__ = [
    "Client",
    "Event",
    "Stats",
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

#: Where each public name lives. They load on first use (PEP 562), not at ``import uptake``:
#: the client, its worker and the spool cost ~26 ms to import, which a process that only
#: needs ``uptake.protocol`` (the daemon, ``usage report``) or never tracks should not pay.
_HOMES = {
    **dict.fromkeys(__all__, "uptake._api"),
    "Client": "uptake._tracker",
    "Event": "uptake._model",
    "Stats": "uptake._stats",
}


def __getattr__(name: str) -> Any:
    """Load a public name on first use; later uses read it from the module's globals."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'uptake' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
