"""SQLite's allocation statistics are switched off only while that is allowed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Each script runs in a fresh interpreter: the setting is process-wide.
_PRELUDE = """
import ctypes, _sqlite3, sqlite3
from uptake_aggregator.store.sqlite.sqlite_tuning import disable_memstatus
used = ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_used
used.restype = ctypes.c_int64
"""


def _run(script: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _PRELUDE + textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_before_any_connection_the_statistics_stop_and_sqlite_still_works() -> None:
    output = _run(
        """
        first = disable_memstatus()
        conn = sqlite3.connect(":memory:")
        conn.execute("CREATE TABLE t (x)")
        conn.executemany("INSERT INTO t VALUES (?)", [(str(i) * 50,) for i in range(1000)])
        rows = conn.execute("SELECT count(*) FROM t").fetchone()[0]
        print(first, used(), rows, disable_memstatus())
        """
    )
    # No allocation counted with a connection busy; a second call is a harmless yes.
    assert output == "True 0 1000 True"


def test_with_a_connection_open_nothing_changes() -> None:
    output = _run(
        """
        conn = sqlite3.connect(":memory:")
        refused = disable_memstatus()
        conn.execute("CREATE TABLE t (x)")
        print(refused, used() > 0, conn.execute("SELECT count(*) FROM t").fetchone()[0])
        """
    )
    assert output == "False True 0"
