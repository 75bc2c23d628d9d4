"""Bit masks as sets of feature ids: counts per bit equal a plain recount."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from uptake_aggregator.metrics.masks import bit_counts, set_bits

# Wide enough to cross 64-bit words (ids over 63), and many masks for deep carries.
_MASKS = st.lists(st.integers(min_value=0, max_value=(1 << 200) - 1), max_size=300)


@given(_MASKS)
def test_bit_counts_equal_a_recount(masks: list[int]) -> None:
    expected = Counter(bit for mask in masks for bit in range(mask.bit_length()) if mask >> bit & 1)
    assert bit_counts(masks) == dict(expected)


@given(st.integers(min_value=0, max_value=(1 << 200) - 1))
def test_set_bits_rebuild_the_mask(mask: int) -> None:
    bits = list(set_bits(mask))
    assert bits == sorted(set(bits))
    assert sum(1 << bit for bit in bits) == mask


def test_every_mask_the_same() -> None:
    assert bit_counts([0b101] * 1000) == {0: 1000, 2: 1000}
    assert bit_counts([]) == {}
