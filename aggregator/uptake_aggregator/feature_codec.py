"""Compact per-(day, user) feature use: a packed, sorted array of (feature hash, events).

The ``user_features`` rollup keeps one BLOB per active (day, user) holding every feature
that user used that day, so a report reads one row per active user-day instead of one
per (day, feature, user). A feature is identified by a stable 64-bit hash of its name
(``feature_names`` maps it back). Blobs are merged at ingest by ``merge_feature_counts``,
registered as an SQLite function: the merge sums counts per hash and keeps the array
sorted, so the stored value does not depend on arrival order or batch split.

Layout: signed 64-bit little-endian integers ``[hash0, count0, hash1, count1, ...]``,
sorted by hash, hashes unique.
"""

from __future__ import annotations

import hashlib
import sys
from array import array
from typing import Final

__all__ = [
    "MERGE_FUNCTION",
    "feature_hash",
    "merge_feature_counts",
    "pack_feature_counts",
    "unpack_feature_counts",
]

#: Name of the SQL function ``storage`` registers for merging blobs.
MERGE_FUNCTION: Final = "uptake_merge_features"
_BIG_ENDIAN: Final = sys.byteorder == "big"
_hashes: dict[str, int] = {}
_HASH_CACHE_LIMIT: Final = 100_000


def feature_hash(name: str) -> int:
    """Stable signed 64-bit hash of a feature name (blake2b; cached, names are few)."""
    found = _hashes.get(name)
    if found is None:
        if len(_hashes) >= _HASH_CACHE_LIMIT:
            _hashes.clear()
        digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        found = _hashes[name] = int.from_bytes(digest, "little", signed=True)
    return found


def pack_feature_counts(counts: dict[int, int]) -> bytes:
    """Encode {hash: events} as the sorted packed array described above."""
    flat = array("q")
    for key in sorted(counts):
        flat.append(key)
        flat.append(counts[key])
    if _BIG_ENDIAN:
        flat.byteswap()
    return flat.tobytes()


def unpack_feature_counts(blob: bytes) -> array[int]:
    """Decode a blob into the flat array ``[hash0, count0, ...]`` (hashes at even indexes)."""
    flat = array("q", blob)
    if _BIG_ENDIAN:
        flat.byteswap()
    return flat


def merge_feature_counts(stored: bytes, incoming: bytes) -> bytes:
    """Sum two blobs' counts per hash (the SQL upsert's merge; order-independent)."""
    counts: dict[int, int] = {}
    for blob in (stored, incoming):
        flat = unpack_feature_counts(blob)
        for key, events in zip(flat[0::2], flat[1::2], strict=True):
            counts[key] = counts.get(key, 0) + events
    return pack_feature_counts(counts)
