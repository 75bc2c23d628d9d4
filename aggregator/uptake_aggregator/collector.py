"""Pausing Python's cyclic garbage collector around bursts of short-lived containers.

The writer's transactions and the report both allocate hundreds of thousands of
containers (rows, rollup groups, per-user tuples) that make no reference cycles and that
reference counting frees at the end; meanwhile each young collection re-walks them. The
switch is process-wide, so callers pause only where nothing else needs the collector.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["collector_paused"]


@contextlib.contextmanager
def collector_paused(pause: bool = True) -> Iterator[None]:
    """Disable the cyclic collector for the block (if ``pause``); restore it on any exit.

    Leaves an already disabled collector disabled. Example::

        with collector_paused():
            storage_round()
    """
    if not pause or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
