"""Bit masks as sets of feature ids: counts per bit equal a plain recount."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from uptake_aggregator.store.masks import BitMasks, IdSets, bit_counts, set_bits

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


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(-(1 << 63), (1 << 63) - 1)), max_size=40))
def test_masks_and_id_sets_agree(words: list[tuple[int, int]]) -> None:
    """The two representations give the same sizes, members and counts."""
    masks = [BitMasks.of_word(word, bits) for word, bits in words]
    sets = [IdSets.of_word(word, bits) for word, bits in words]
    assert [set(set_bits(mask)) for mask in masks] == [set(ids) for ids in sets]
    assert [BitMasks.size(mask) for mask in masks] == [IdSets.size(ids) for ids in sets]
    assert BitMasks.counts(masks) == IdSets.counts(sets)
    union_mask, union_set = BitMasks.empty, IdSets.empty
    for mask, ids in zip(masks, sets, strict=True):
        union_mask, union_set = union_mask | mask, union_set | ids
    assert set(set_bits(union_mask)) == union_set
    assert BitMasks.of(70) == 1 << 70 and IdSets.of(70) == frozenset({70})
