"""SDK configuration: keyword arguments of ``configure()`` over ``UPTAKE_*`` environment variables.

Precedence: an argument passed to ``configure()`` wins, then the environment, then the
default. A value that cannot be used (``UPTAKE_MAX_BATCH=lots``, a negative interval) is
logged once through ``logging.getLogger("uptake")`` and replaced by the default: a typo in
the environment must never break the host app.

=========================  =======================  =========================================
argument                   environment              default
=========================  =======================  =========================================
``app``                    ``UPTAKE_APP``           None (events carry no ``source``)
``socket``                 ``UPTAKE_SOCKET``        ``uptake.paths.default_socket_path()``;
                                                    ``tcp://127.0.0.1:PORT`` selects TCP
``disabled``               ``UPTAKE_DISABLED``      False (``1/true/yes/on`` disable)
``spool``                  ``UPTAKE_SPOOL``         True (``0/false/no/off`` disable)
``spool_dir``              ``UPTAKE_SPOOL_DIR``     ``uptake.paths.default_spool_dir()``
``spool_max_bytes``        ``UPTAKE_SPOOL_MAX_BYTES`` 64 MiB, all files of the spool dir
``flush_interval``         ``UPTAKE_FLUSH_INTERVAL`` 1.0 s
``max_batch``              ``UPTAKE_MAX_BATCH``     1000 events per ``Batch``
``max_queue``              ``UPTAKE_MAX_QUEUE``     100 000 events buffered in memory
``exit_timeout``           ``UPTAKE_EXIT_TIMEOUT``  2.0 s for the flush at process exit
``ack_timeout``            ``UPTAKE_ACK_TIMEOUT``   10.0 s a stalled daemon may take per answer
``token``                  ``UPTAKE_TOKEN``         None: read from the token file (TCP only)
``token_file``             ``UPTAKE_TOKEN_FILE``    ``uptake.paths.default_token_path()``
=========================  =======================  =========================================
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from uptake import paths

__all__ = ["Config", "resolve_config"]

_log = logging.getLogger("uptake")
_T = TypeVar("_T")

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})

#: A ``Batch`` frame must stay under 16 MiB with events of up to 8 KiB each.
MAX_BATCH_LIMIT = 2000


@dataclass(frozen=True)
class Config:
    """Resolved settings of one client (see the module docstring for sources and defaults)."""

    app: str | None = None
    socket: str | None = None
    disabled: bool = False
    spool: bool = True
    spool_dir: Path | None = None
    spool_max_bytes: int = 64 * 1024 * 1024
    flush_interval: float = 1.0
    max_batch: int = 1000
    max_queue: int = 100_000
    exit_timeout: float = 2.0
    ack_timeout: float = 10.0
    token: str | None = None
    token_file: Path | None = None

    def socket_address(self) -> str:
        """The daemon address: a Unix socket path or ``tcp://127.0.0.1:PORT``."""
        return self.socket if self.socket else str(paths.default_socket_path())

    def spool_path(self) -> Path:
        """The spool directory."""
        return self.spool_dir if self.spool_dir else paths.default_spool_dir()

    def token_path(self) -> Path:
        """The TCP token file."""
        return self.token_file if self.token_file else paths.default_token_path()


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected one of {sorted(_TRUE | _FALSE)}")


def _positive_int(value: Any) -> int:
    number = int(value)
    if number < 1 or isinstance(value, bool):
        raise ValueError("expected a positive integer")
    return number


def _positive_float(value: Any) -> float:
    number = float(value)
    if not number > 0 or isinstance(value, bool):
        raise ValueError("expected a positive number of seconds")
    return number


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError("expected a string")
    return os.fspath(value) or None


def _path(value: Any) -> Path | None:
    text = _text(value)
    return Path(text) if text else None


def _boolean(value: Any) -> bool:
    if isinstance(value, str):
        return _parse_bool(value)
    if isinstance(value, (bool, int)):
        return bool(value)
    raise ValueError("expected a boolean")


# argument name -> (environment variable, converter)
_FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "app": ("UPTAKE_APP", _text),
    "socket": ("UPTAKE_SOCKET", _text),
    "disabled": ("UPTAKE_DISABLED", _boolean),
    "spool": ("UPTAKE_SPOOL", _boolean),
    "spool_dir": ("UPTAKE_SPOOL_DIR", _path),
    "spool_max_bytes": ("UPTAKE_SPOOL_MAX_BYTES", _positive_int),
    "flush_interval": ("UPTAKE_FLUSH_INTERVAL", _positive_float),
    "max_batch": ("UPTAKE_MAX_BATCH", _positive_int),
    "max_queue": ("UPTAKE_MAX_QUEUE", _positive_int),
    "exit_timeout": ("UPTAKE_EXIT_TIMEOUT", _positive_float),
    "ack_timeout": ("UPTAKE_ACK_TIMEOUT", _positive_float),
    "token": ("UPTAKE_TOKEN", _text),
    "token_file": ("UPTAKE_TOKEN_FILE", _path),
}


def resolve_config(
    arguments: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> Config:
    """Build a ``Config`` from ``configure()`` keyword arguments and the environment.

    Arguments that are None fall back to the environment, then to the default. Unknown
    argument names and unusable values are logged and ignored; this never raises.

    >>> resolve_config({"max_batch": 10}, {"UPTAKE_APP": "billing"}).app
    'billing'
    """
    environ = os.environ if environ is None else environ
    defaults = Config()
    values: dict[str, Any] = {}
    for name in arguments:
        if name not in _FIELDS:
            _log.warning("uptake.configure(): unknown option %r ignored", name)
    for name, (env_name, convert) in _FIELDS.items():
        raw: Any = arguments.get(name)
        origin = f"argument {name}={raw!r}"
        if raw is None and env_name in environ:
            raw = environ[env_name]
            origin = f"{env_name}={raw!r}"
        if raw is None:
            continue
        try:
            values[name] = convert(raw)
        except (TypeError, ValueError) as exc:
            _log.warning(
                "uptake: ignoring %s (%s); using the default %r",
                origin,
                exc,
                getattr(defaults, name),
            )
    config = Config(**values)
    if config.max_batch > MAX_BATCH_LIMIT:
        _log.warning(
            "uptake: max_batch=%d lowered to %d (a batch frame must stay under 16 MiB)",
            config.max_batch,
            MAX_BATCH_LIMIT,
        )
        config = replace(config, max_batch=MAX_BATCH_LIMIT)
    if config.max_queue < config.max_batch:
        config = replace(config, max_queue=config.max_batch)
    return config
