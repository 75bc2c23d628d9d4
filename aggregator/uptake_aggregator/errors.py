"""The aggregator's exception hierarchy: one base, a few specific kinds."""

from __future__ import annotations

__all__ = [
    "AggregatorError",
    "ConfigError",
    "DaemonError",
    "QueryError",
    "StorageError",
    "StoreUnreachableError",
]


class AggregatorError(Exception):
    """Base of every error the aggregator raises on purpose; the message says what to do."""


class StorageError(AggregatorError):
    """The database is missing, locked, corrupt or of an unknown schema version."""


class StoreUnreachableError(StorageError):
    """The central store's URL is malformed, or its server is down or refused the login."""


class DaemonError(AggregatorError):
    """The daemon cannot start, stop or be reached (socket in use, no pidfile, ...)."""


class QueryError(AggregatorError):
    """A report request is invalid: bad dates, unknown account, unknown report."""


class ConfigError(AggregatorError):
    """``uptake.toml`` is missing, unreadable or invalid; the message names the line and key."""
