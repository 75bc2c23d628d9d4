"""Time-ordered 16-byte event ids in the UUIDv7 layout (RFC 9562).

Layout: 48-bit Unix milliseconds, 4-bit version (7), 12 bits holding the microseconds
within the millisecond (so ids sort by event time to the microsecond), 2-bit variant,
62 random bits. Ids generated for one timestamp still differ by their random tail.
Time order matters to the daemon: ids are the primary key, and appending near the end
of the B-tree is about ten times cheaper than random inserts.
"""

from __future__ import annotations

import contextlib
import functools
import os
import struct
from typing import Final

import msgspec

__all__ = [
    "content_event_id",
    "event_id_time_us",
    "new_event_id",
    "new_event_ids",
    "new_session_id",
]

_VARIANT = 0b10 << 62
_RAND_MASK = (1 << 62) - 1
_MS_MASK = 0xFFFF_FFFF_FFFF
#: Maps a random byte to itself with its top two bits set to the variant 0b10.
_VARIANT_BYTE = bytes((byte & 0x3F) | 0x80 for byte in range(256))
#: Maps the byte holding the top 4 of the 12 sub-millisecond bits (always < 4) to
#: itself with the version nibble 7 above them.
_VERSION_BYTE = bytes(byte | 0x70 for byte in range(256))
_ids_decoder: Final = msgspec.msgpack.Decoder(list[bytes])


def _pack(ts_us: int, tail: int) -> bytes:
    ms, sub_ms_us = divmod(ts_us, 1000)
    high = ((ms & 0xFFFF_FFFF_FFFF) << 16) | (0x7 << 12) | (sub_ms_us & 0xFFF)
    low = _VARIANT | (tail & _RAND_MASK)
    return high.to_bytes(8, "big") + low.to_bytes(8, "big")


# -- the time halves of a batch, by big-int arithmetic -------------------------------
# ms << 16 | sub_ms == ms * 65536 + (ts - ms * 1000) == ms * 64536 + ts, with
# ms = ts // 1000. Per id that is a division, a multiplication and an addition on big
# ints (~100-150 ns a timestamp on a busy host); done on one Python int holding every
# timestamp in its own 16-byte lane, each is one big-int operation for the whole batch.
# The division is a multiplication by a magic number and a shift (division by invariant
# integers: floor(x / d) == (x * ceil(2**s / d)) >> s for all 0 <= x < 2**n when
# ceil(2**s / d) * d - 2**s <= 2**(s - n); here d = 1000, n = 53, s = 64). No lane's
# product reaches the next lane (all stay under 2**108 in 128-bit lanes) and a mask cuts
# off what the shift brings down from the lane above. The tests compare with ``//``.
_LANE_BYTES: Final = 16
_MS_SHIFT: Final = 64
_MS_MAGIC: Final = -(-(1 << _MS_SHIFT) // 1000)
#: Smaller batches take the plain formula (the lanes' fixed cost is a few µs).
_LANES_FROM: Final = 16
#: Timestamps below 2**53 µs (the year 2255) are exact with these constants.
_MAX_LANE_TS_BITS: Final = 53


@functools.lru_cache(maxsize=8)
def _lane_constants(count: int) -> tuple[struct.Struct, int]:
    """Per batch size: a Struct packing timestamps into the low halves of 16-byte lanes,
    and a mask of every lane's low 64 bits."""
    low64 = int.from_bytes(((1 << 64) - 1).to_bytes(_LANE_BYTES, "big") * count, "big")
    return struct.Struct(">" + "8xQ" * count), low64


def _time_halves(timestamps: list[int]) -> bytearray:
    """The ids' high halves (version nibble still 0) for ``timestamps``, packed ``>Q``.

    Raises ``struct.error`` for a timestamp that is negative or not below 2**53.
    """
    count = len(timestamps)
    packer, low64 = _lane_constants(count)
    lanes = int.from_bytes(packer.pack(*timestamps), "big")
    if (lanes >> _MAX_LANE_TS_BITS) & low64:
        raise struct.error("a timestamp at or past 2**53 us")
    ms = ((lanes * _MS_MAGIC) >> _MS_SHIFT) & low64
    lanes_bytes = (ms * 64536 + lanes).to_bytes(_LANE_BYTES * count, "big")
    highs = bytearray(8 * count)
    for offset in range(8):
        highs[offset::8] = lanes_bytes[8 + offset :: _LANE_BYTES]
    return highs


def new_event_id(ts_us: int) -> bytes:
    """Return a fresh id for an event at ``ts_us`` (microseconds since the epoch).

    >>> len(new_event_id(1_700_000_000_000_000))
    16
    """
    return _pack(ts_us, int.from_bytes(os.urandom(8), "big"))


def new_event_ids(timestamps: list[int]) -> list[bytes]:
    """Return one fresh id per timestamp; one ``os.urandom`` call for the whole batch.

    The same ids as ``new_event_id`` for each timestamp, built a batch at a time for the
    worker: the high halves are packed by one ``struct`` call, the version and variant
    bits set by one ``translate`` each, and high halves and random tails interleaved by
    strided slice assignments into a msgpack array of 16-byte ``bin`` values, which
    msgspec turns into the ``bytes`` objects in C. The time arithmetic is done for the
    whole batch by a few big-int operations (``_time_halves``) from 16 ids on, per id
    below that (or for a timestamp outside the lanes' range).
    """
    count = len(timestamps)
    if not count:
        return []
    highs = None
    if count >= _LANES_FROM:
        with contextlib.suppress(struct.error):  # a timestamp out of the lanes' range
            highs = _time_halves(timestamps)
    if highs is None:
        try:
            # ms << 16 | sub_ms == ms * 64536 + ts (see above); the version nibble is
            # OR-ed in below. A negative or too large ts does not fit ">Q".
            highs = bytearray(
                struct.pack(f">{count}Q", *[(ts // 1000) * 64536 + ts for ts in timestamps])
            )
        except struct.error:
            highs = bytearray(
                struct.pack(
                    f">{count}Q",
                    *[(((ts // 1000) & _MS_MASK) << 16) | ts % 1000 for ts in timestamps],
                )
            )
    highs[6::8] = highs[6::8].translate(_VERSION_BYTE)
    tails = bytearray(os.urandom(8 * count))
    tails[::8] = tails[::8].translate(_VARIANT_BYTE)
    # msgpack: array32 header, then per id 0xc4 0x10 (bin8 of 16 bytes) and the id.
    packed = bytearray(5 + 18 * count)
    packed[:5] = b"\xdd" + count.to_bytes(4, "big")
    packed[5::18] = b"\xc4" * count
    packed[6::18] = b"\x10" * count
    for offset in range(8):
        packed[7 + offset :: 18] = highs[offset::8]
        packed[15 + offset :: 18] = tails[offset::8]
    return _ids_decoder.decode(packed)


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


def new_session_id(ts_ns: int) -> str:
    """Return a session id that sorts by start time: 12 hex digits of Unix ms, 12 random.

    The daemon keys its sessions rollup by session id. Ids that grow with time keep the
    rows of open sessions together at the end of that table; random ids scattered them,
    so every commit rewrote about one page per open session (measured ~1 µs/event more
    ingest). 48 random bits make two sessions started in the same millisecond distinct.

    >>> len(new_session_id(1_700_000_000_000_000_000))
    24
    """
    return f"{(ts_ns // 1_000_000) & _MS_MASK:012x}{os.urandom(6).hex()}"
