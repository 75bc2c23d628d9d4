"""Time-ordered 16-byte event ids in the UUIDv7 layout (RFC 9562).

Layout: 48-bit Unix milliseconds, 4-bit version (7), 12 bits holding the microseconds
within the millisecond (so ids sort by event time to the microsecond), 2-bit variant,
62 random bits. Ids generated for one timestamp still differ by their random tail.
Time order matters to the daemon: ids are the primary key, and appending near the end
of the B-tree is about ten times cheaper than random inserts.
"""

from __future__ import annotations

import os

__all__ = ["content_event_id", "event_id_time_us", "new_event_id", "new_event_ids"]

_VARIANT = 0b10 << 62
_RAND_MASK = (1 << 62) - 1


def _pack(ts_us: int, tail: int) -> bytes:
    ms, sub_ms_us = divmod(ts_us, 1000)
    high = ((ms & 0xFFFF_FFFF_FFFF) << 16) | (0x7 << 12) | (sub_ms_us & 0xFFF)
    low = _VARIANT | (tail & _RAND_MASK)
    return high.to_bytes(8, "big") + low.to_bytes(8, "big")


def new_event_id(ts_us: int) -> bytes:
    """Return a fresh id for an event at ``ts_us`` (microseconds since the epoch).

    >>> len(new_event_id(1_700_000_000_000_000))
    16
    """
    return _pack(ts_us, int.from_bytes(os.urandom(8), "big"))


def new_event_ids(timestamps: list[int]) -> list[bytes]:
    """Return one fresh id per timestamp; one ``os.urandom`` call for the whole batch."""
    entropy = os.urandom(8 * len(timestamps))
    return [
        _pack(ts, int.from_bytes(entropy[8 * i : 8 * i + 8], "big"))
        for i, ts in enumerate(timestamps)
    ]


def content_event_id(ts_us: int, content: bytes) -> bytes:
    """Return a deterministic id for an event, derived from its content.

    Used by ``usage import`` when a line has no id: importing the same line twice gives
    the same id, so the daemon stores it once. The time prefix keeps ids time-ordered.
    """
    # Imported here: hashlib loads OpenSSL (~3.5 MiB RSS), which the SDK must not pay for.
    import hashlib

    digest = hashlib.blake2b(content, digest_size=8).digest()
    return _pack(ts_us, int.from_bytes(digest, "big"))


def event_id_time_us(event_id: bytes) -> int:
    """Return the event time (µs since the epoch) encoded in an id's first 8 bytes."""
    high = int.from_bytes(event_id[:8], "big")
    return (high >> 16) * 1000 + (high & 0xFFF)
