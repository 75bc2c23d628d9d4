"""Sets of small integers (feature ids) as Python int bit masks, and counts over them.

A report holds one mask per user and per account instead of a set of feature names: a
union is ``|``, a size is ``int.bit_count``, and how many masks hold each bit comes from
``bit_counts`` without visiting every (mask, bit) pair.

A mask is as wide as the highest id it holds, though: where feature ids run high (names
made up on the fly, such as one per document), the same operations run on frozensets of
ids instead (``IdSets``), whose memory follows the ids held. ``BitMasks`` and ``IdSets``
offer the same few operations (``SetAlgebra``), so the report's code serves both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import ClassVar, Protocol, TypeVar

__all__ = ["BitMasks", "IdSets", "SetAlgebra", "bit_counts", "set_bits"]

#: One 64-bit word of a mask as SQLite returns it (bit 63 makes it negative).
_WORD_BITS = (1 << 64) - 1

#: A set of ids: an int bit mask or a frozenset.
IdSet = TypeVar("IdSet", int, frozenset[int])


def set_bits(mask: int) -> Iterator[int]:
    """The positions of the set bits of a non-negative ``mask``, lowest first.

    >>> list(set_bits(0b10110))
    [1, 2, 4]
    """
    while mask:
        lowest = mask & -mask
        yield lowest.bit_length() - 1
        mask ^= lowest


def bit_counts(masks: Iterable[int]) -> dict[int, int]:
    """For each bit position set in some mask, how many of ``masks`` have it set.

    A bit-sliced adder: ``planes[i]`` holds bit i of every position's running count, so
    adding a mask is a ripple carry over the planes (a few big-int operations for all
    positions at once, about two planes deep on average) rather than a loop over its bits.

    >>> bit_counts([0b011, 0b110, 0b010])
    {0: 1, 1: 3, 2: 1}
    """
    planes: list[int] = []
    for mask in masks:
        carry = mask
        for index, plane in enumerate(planes):
            planes[index] = plane ^ carry
            carry &= plane
            if not carry:
                break
        else:
            if carry:
                planes.append(carry)
    counts: dict[int, int] = {}
    for weight, plane in enumerate(planes):
        for position in set_bits(plane):
            counts[position] = counts.get(position, 0) + (1 << weight)
    return counts


class SetAlgebra(Protocol[IdSet]):
    """The operations a report needs on sets of ids; ``|`` is the union."""

    @property
    def empty(self) -> IdSet:
        """The empty set."""
        ...

    def of(self, member: int) -> IdSet:
        """The set holding ``member`` alone."""
        ...

    def of_word(self, word: int, bits: int) -> IdSet:
        """The ids ``64 * word + b`` for each bit ``b`` set in the 64-bit ``bits``."""
        ...

    def size(self, ids: IdSet) -> int:
        """How many ids the set holds."""
        ...

    def counts(self, sets: Iterable[IdSet]) -> dict[int, int]:
        """For each id in some set, how many of ``sets`` hold it."""
        ...


class BitMasks:
    """Sets of ids as int bit masks: small and fast while the ids are small."""

    empty: ClassVar[int] = 0

    @staticmethod
    def of(member: int) -> int:
        """The mask of ``member`` alone."""
        return 1 << member

    @staticmethod
    def of_word(word: int, bits: int) -> int:
        """The mask of one 64-bit word of ids."""
        return (bits & _WORD_BITS) << (word << 6)

    @staticmethod
    def size(ids: int) -> int:
        """How many ids the mask holds."""
        return ids.bit_count()

    @staticmethod
    def counts(sets: Iterable[int]) -> dict[int, int]:
        """Per id, how many masks hold it (``bit_counts``)."""
        return bit_counts(sets)


class IdSets:
    """Sets of ids as frozensets: memory in proportion to the ids held, however high."""

    empty: ClassVar[frozenset[int]] = frozenset()

    @staticmethod
    def of(member: int) -> frozenset[int]:
        """The set of ``member`` alone."""
        return frozenset((member,))

    @staticmethod
    def of_word(word: int, bits: int) -> frozenset[int]:
        """The set of one 64-bit word of ids."""
        return frozenset(word * 64 + bit for bit in set_bits(bits & _WORD_BITS))

    @staticmethod
    def size(ids: frozenset[int]) -> int:
        """How many ids the set holds."""
        return len(ids)

    @staticmethod
    def counts(sets: Iterable[frozenset[int]]) -> dict[int, int]:
        """Per id, how many sets hold it."""
        return dict(Counter(chain.from_iterable(sets)))
