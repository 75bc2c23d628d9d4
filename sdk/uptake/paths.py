"""Default locations of uptake's files, from platformdirs, each overridable by env.

Shared by the SDK (socket, spool), the daemon (socket, database, pidfile, log, token) and
the CLI. Only stdlib and platformdirs are imported, so the SDK stays light; platformdirs
(~10 ms to import) only when a default location is actually needed.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from types import ModuleType

__all__ = [
    "default_db_path",
    "default_log_dir",
    "default_socket_path",
    "default_spool_dir",
    "default_spool_dirs",
    "default_token_path",
    "pidfile_path",
    "runtime_dir",
]

_APP = "uptake"


def _platformdirs() -> ModuleType:
    import platformdirs

    return platformdirs


def runtime_dir() -> Path:
    """Directory for the socket, pidfile and token (``$XDG_RUNTIME_DIR/uptake``)."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset and falls back to /tmp/runtime-UID,
        # which is what we want on servers and in containers.
        warnings.simplefilter("ignore")
        return Path(_platformdirs().user_runtime_dir(_APP))


def default_socket_path() -> Path:
    """The daemon's Unix socket: ``$UPTAKE_SOCKET`` or ``<runtime dir>/uptake.sock``."""
    env = os.environ.get("UPTAKE_SOCKET")
    return Path(env) if env else runtime_dir() / "uptake.sock"


def default_db_path() -> Path:
    """The SQLite database: ``$UPTAKE_DB`` or ``<user data dir>/uptake.db``."""
    env = os.environ.get("UPTAKE_DB")
    return Path(env) if env else Path(_platformdirs().user_data_dir(_APP)) / "uptake.db"


def default_spool_dir() -> Path:
    """Where the SDK spools batches the daemon could not take: ``$UPTAKE_SPOOL_DIR`` or cache."""
    env = os.environ.get("UPTAKE_SPOOL_DIR")
    return Path(env) if env else Path(_platformdirs().user_cache_dir(_APP)) / "spool"


def default_spool_dirs() -> list[Path]:
    """Every spool root a daemon adopts from by default: the cache dir's, and the env's.

    An SDK spools under ``$UPTAKE_SPOOL_DIR`` when set, else under the cache dir; the
    daemon may not share the app's environment, so it looks in both.
    """
    roots = [Path(_platformdirs().user_cache_dir(_APP)) / "spool"]
    env = os.environ.get("UPTAKE_SPOOL_DIR")
    if env and Path(env) not in roots:
        roots.append(Path(env))
    return roots


def default_log_dir() -> Path:
    """The daemon's log directory: ``$UPTAKE_LOG_DIR`` or the platformdirs log dir."""
    env = os.environ.get("UPTAKE_LOG_DIR")
    return Path(env) if env else Path(_platformdirs().user_log_dir(_APP))


def pidfile_path(socket_path: Path) -> Path:
    """The daemon's pidfile, kept next to its socket so each socket has its own daemon."""
    return socket_path.with_name(socket_path.name + ".pid")


def default_token_path() -> Path:
    """The TCP token file (mode 0600): ``$UPTAKE_TOKEN_FILE`` or ``<runtime dir>/uptake.token``.

    A daemon listening on TCP writes a random token here; clients read it and send it in
    their ``Hello``.
    """
    env = os.environ.get("UPTAKE_TOKEN_FILE")
    return Path(env) if env else runtime_dir() / "uptake.token"
