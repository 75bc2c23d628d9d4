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

from uptake._api import (
    configure,
    default_client,
    end_session,
    flush,
    identify,
    login,
    logout,
    mark_release,
    record,
    session,
    set_seats,
    shutdown,
    start_session,
    stats,
    track,
)
from uptake._client import Client
from uptake._model import Event
from uptake._stats import Stats

__all__ = [
    "Client",
    "Event",
    "Stats",
    "configure",
    "default_client",
    "end_session",
    "flush",
    "identify",
    "login",
    "logout",
    "mark_release",
    "record",
    "session",
    "set_seats",
    "shutdown",
    "start_session",
    "stats",
    "track",
]
