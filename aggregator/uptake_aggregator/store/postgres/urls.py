"""PostgreSQL URLs: recognising them, and a form safe to print (no password).

Kept free of psycopg so ``open_store`` and the CLI can tell a URL from a path, and say
which server an error is about, without importing the driver.

>>> is_postgres_url("postgresql://u:secret@db/uptake"), is_postgres_url("/var/uptake.db")
(True, False)
>>> redact("postgresql://u:secret@db:5432/uptake?sslmode=require&password=x")
'postgresql://u:***@db:5432/uptake?sslmode=require&password=***'
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["is_postgres_url", "redact"]

_SCHEMES: Final = ("postgresql://", "postgres://")
# user:password@ in the authority part, and password=... among the query parameters.
_USERINFO: Final = re.compile(r"(://[^/@:?#]*):[^@/?#]*@")
_PARAM: Final = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def is_postgres_url(location: str) -> bool:
    """True for ``postgresql://`` and ``postgres://`` URLs."""
    return location.startswith(_SCHEMES)


def redact(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``.

    Applied to every message and log line that names a server, psycopg's error texts
    included (they may quote the connection string).
    """
    return _PARAM.sub(r"\1***", _USERINFO.sub(r"\1:***@", text))
