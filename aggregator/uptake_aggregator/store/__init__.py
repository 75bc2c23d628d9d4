"""Where events are kept: the interfaces (``base``, ``ingest``, ``reports``) and the backends.

``open_store(location)`` is the one place a backend is chosen: the daemon, the CLI and the
report open stores only through it. ``store/sqlite/`` is the local SQLite backend,
``store/postgres/`` the central PostgreSQL one (psycopg is imported only for a URL).

Example::

    store = open_store(Path("uptake.db"))
    store.events_stored()
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from uptake_aggregator.errors import StorageError
from uptake_aggregator.store.postgres.urls import is_postgres_url, redact

if TYPE_CHECKING:
    from uptake_aggregator.store.base import Store
    from uptake_aggregator.store.ingest import ForwardTarget

__all__ = ["open_forward_target", "open_store", "shown_location"]

_SQLITE_SCHEME = "sqlite:///"


def open_store(location: str | Path) -> Store:
    """The store at ``location``: a file path or ``sqlite:///PATH`` (SQLite), or a
    ``postgresql://`` / ``postgres://`` URL (the central store).

    Opens nothing yet: each use opens what it needs. Raises ``StorageError`` for a URL of
    a backend this uptake does not have.
    """
    text = str(location)
    if is_postgres_url(text):
        from uptake_aggregator.store.postgres.store import PostgresStore

        return PostgresStore(text)
    if text.startswith(_SQLITE_SCHEME):
        text = text[len(_SQLITE_SCHEME) - 1 :]
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise StorageError(
            f"no store backend for {scheme!r} URLs: "
            "give a database file path or a postgresql:// URL"
        )
    from uptake_aggregator.store.sqlite.store import SqliteStore

    return SqliteStore(Path(text))


def shown_location(location: str | Path) -> str:
    """``location`` safe to print and log: a URL's password replaced by ``***``."""
    return redact(str(location))


def open_forward_target(url: str) -> ForwardTarget:
    """The central store at the ``postgresql://`` ``url``, as a forwarding daemon writes to it.

    Connects on first use. Raises ``StorageError`` for anything but a PostgreSQL URL, and
    when psycopg (the extra ``uptake[postgres]``) is not installed.
    """
    if not is_postgres_url(url):
        shown = url.split("://", 1)[0] + "://..." if "://" in url else "a path"
        raise StorageError(
            "forwarding needs a central store URL (postgresql://user@host/db), "
            f"not {shown}: see `usage store init`"
        )
    import importlib.util

    if importlib.util.find_spec("psycopg") is None:
        raise StorageError("forwarding needs psycopg: pip install 'uptake[postgres]'")
    from uptake_aggregator.store.postgres.central import CentralWriter

    return CentralWriter(url)
