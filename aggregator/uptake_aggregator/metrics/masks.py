"""Sets of small integers (feature ids) as Python int bit masks, and counts over them.

A report holds one mask per user and per account instead of a set of feature names: a
union is ``|``, a size is ``int.bit_count``, and how many masks hold each bit comes from
``bit_counts`` without visiting every (mask, bit) pair.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ["bit_counts", "set_bits"]


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
