"""Where built batches go: the one interface the batch processor calls, and its makers.

* ``SinkDelivery`` gives the ``Event`` structs to an in-memory sink (``uptake.testing``,
  benchmarks);
* ``DaemonDelivery`` (``uptake._daemon_delivery``) sends ``Batch`` frames to the daemon,
  spooling what it cannot send.

The processor (``uptake._processor``) stages built batches, sends the staged ones when it
has nothing left to build, and calls ``maintain`` once per cycle; it never looks inside a
delivery, and a delivery never looks at the processor's buffer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from uptake._build import Built
from uptake._config import Config
from uptake._model import Event
from uptake._stats import Counters

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Delivery", "EventSink", "SinkDelivery", "make_delivery"]


class EventSink(Protocol):
    """Receives validated events instead of the daemon (see ``uptake.testing``)."""

    def write(self, events: list[Event]) -> None:
        """Take one batch of events; called from the worker (or caller, in sync mode)."""


class Delivery(Protocol):
    """What the batch processor hands built batches to. Never raises for delivery problems."""

    #: Events built and staged, not yet sent nor kept (they count as queued).
    staged: int

    def stage(self, built: Built) -> None:
        """Take one batch to send later, in order (or deliver it right away)."""

    def send_staged(self, deadline: float) -> bool:
        """Send or keep the oldest staged batch; False if none was staged."""

    def maintain(self, deadline: float, force: bool) -> None:
        """Replay backlog if possible and wait for outstanding acknowledgements."""

    def idle_timeout(self, flush_interval: float) -> float:
        """How long the worker may sleep before ``maintain`` has work again."""

    def has_backlog(self) -> bool:
        """True when staged or earlier batches wait to be sent or replayed."""

    def unacknowledged(self) -> bool:
        """True while any batch handed over is not yet acknowledged (staged, in flight,
        kept in memory or in this process's spool files)."""

    def close(self) -> None:
        """Release sockets and files (the spool stays on disk)."""

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's sockets and files without using them."""


class SinkDelivery:
    """Deliver to an ``EventSink``; counts every event as sent. Nothing is ever staged."""

    def __init__(self, sink: EventSink, counters: Counters) -> None:
        self._sink = sink
        self._counters = counters
        self.staged = 0

    def stage(self, built: Built) -> None:
        """Hand the events to the sink right away (nothing to wait for)."""
        self._sink.write(built.events)
        self._counters.add(sent=len(built))

    def send_staged(self, deadline: float) -> bool:
        """Nothing is ever staged."""
        return False

    def maintain(self, deadline: float, force: bool) -> None:
        """Nothing to replay."""

    def idle_timeout(self, flush_interval: float) -> float:
        """Sleep a whole interval."""
        return flush_interval

    def has_backlog(self) -> bool:
        """Never any."""
        return False

    def unacknowledged(self) -> bool:
        """Never any: the sink took every batch."""
        return False

    def close(self) -> None:
        """Nothing to release."""

    def forget_after_fork(self) -> None:
        """The sink object is shared with the parent; nothing to drop."""


def make_delivery(config: Config, counters: Counters, sink: EventSink | None) -> Delivery:
    """The delivery a client with this configuration uses."""
    if sink is not None:
        return SinkDelivery(sink, counters)
    from uptake._daemon_delivery import DaemonDelivery

    daemon: Callable[[Config, Counters], Delivery] = DaemonDelivery
    return daemon(config, counters)
