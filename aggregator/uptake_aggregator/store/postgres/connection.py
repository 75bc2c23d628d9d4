"""Connecting to the central PostgreSQL and creating or migrating its schema.

libpq reads the connection parameters: the URL's own (``sslmode``, ``host``, ...), then
the ``PG*`` environment (``PGPASSWORD``) and ``~/.pgpass`` for the password. Every error
message goes through ``urls.redact``: a password never reaches a log or a terminal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from uptake_aggregator.errors import StorageError, StoreUnreachableError
from uptake_aggregator.store.postgres.schema import MIGRATIONS, SCHEMA_VERSION
from uptake_aggregator.store.postgres.urls import redact

if TYPE_CHECKING:
    import psycopg

__all__ = ["check_version", "connect", "migrate", "server_error"]

#: Seconds libpq waits for a server that does not answer (unless the URL says otherwise).
_CONNECT_TIMEOUT_S: Final = 10
#: Applications name their connections (``pg_stat_activity``).
_APPLICATION: Final = "uptake"


def server_error(url: str, exc: Exception) -> StorageError:
    """A ``StorageError`` for a failure talking to the server at ``url``, password-free."""
    detail = redact(str(exc).strip()) or type(exc).__name__
    return StorageError(f"central store {redact(url)}: {detail}")


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection[tuple[Any, ...]]:
    """A psycopg connection to ``url``.

    Raises ``StoreUnreachableError`` (redacted) for a malformed URL, a server that does
    not answer or a refused login; ``StorageError`` naming the missing extra when
    psycopg is not installed.
    """
    try:
        import psycopg
    except ImportError:
        raise StorageError(
            "the central store needs psycopg: pip install 'uptake[postgres]'"
        ) from None
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        given = conninfo_to_dict(url)
        options: dict[str, Any] = {"application_name": _APPLICATION}
        if "connect_timeout" not in given:
            options["connect_timeout"] = _CONNECT_TIMEOUT_S
        return psycopg.connect(make_conninfo(url, **options), autocommit=autocommit)
    except psycopg.Error as exc:
        detail = redact(str(exc).strip()) or type(exc).__name__
        raise StoreUnreachableError(
            f"cannot connect to the central store {redact(url)}: {detail}"
        ) from None


def _current_version(conn: psycopg.Connection[tuple[Any, ...]]) -> int:
    row = conn.execute("SELECT to_regclass('uptake_schema') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        return 0
    found = conn.execute("SELECT max(version) FROM uptake_schema").fetchone()
    return int(found[0]) if found is not None and found[0] is not None else 0


def migrate(url: str) -> tuple[int, int]:
    """Create or migrate the central schema at ``url``; return (version before, after).

    One transaction, holding an advisory lock, so two hosts initialising at once do not
    race; a database newer than this uptake is refused.
    """
    import psycopg

    conn = connect(url)
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('uptake_schema'))")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS uptake_schema ("
                " version integer PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())"
            )
            before = _current_version(conn)
            if before > SCHEMA_VERSION:
                raise StorageError(
                    f"central store {redact(url)} has schema version {before}, newer than "
                    f"this uptake (version {SCHEMA_VERSION}): upgrade uptake"
                )
            for version in range(before, SCHEMA_VERSION):
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                conn.execute("INSERT INTO uptake_schema (version) VALUES (%s)", (version + 1,))
        return before, SCHEMA_VERSION
    except psycopg.Error as exc:
        raise server_error(url, exc) from None
    finally:
        conn.close()


def check_version(url: str, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
    """Raise ``StorageError`` unless the schema at ``url`` is this uptake's version."""
    version = _current_version(conn)
    if version != SCHEMA_VERSION:
        action = (
            f"run `usage store init {redact(url)}` to create it"
            if version == 0
            else f"run `usage store init {redact(url)}` to migrate it, or upgrade uptake"
        )
        raise StorageError(
            f"central store {redact(url)} has schema version {version}, this uptake uses "
            f"version {SCHEMA_VERSION}: {action}"
        )
