"""Mask run-length round trips, in COCO's layout (column-major, a zero-run first)."""

from __future__ import annotations

import numpy as np
import pytest

from labels import Mask
from labels.masks import decode_mask, encode_mask


@pytest.mark.parametrize("seed", range(5))
def test_random_masks_round_trip(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((rng.integers(1, 40), rng.integers(1, 40))) > 0.6
    assert np.array_equal(decode_mask(encode_mask(mask)), mask)


def test_layout_is_column_major_starting_with_zeros():
    mask = np.array([[1, 0], [1, 1]], dtype=bool)  # columns: (1, 1), (0, 1)
    assert encode_mask(mask).counts == [0, 2, 1, 1]
    assert encode_mask(np.zeros((2, 3), bool)).counts == [6]


def test_bad_masks_are_refused():
    with pytest.raises(ValueError, match="2-D"):
        encode_mask(np.zeros((2, 2, 2), bool))
    with pytest.raises(ValueError, match="cover 5 pixels"):
        decode_mask(Mask(height=2, width=2, counts=[2, 3]))
